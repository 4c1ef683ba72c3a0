"""Story evolution: confident matches teach a story the new names its coverage brings.

A story is written at one moment; coverage then moves on (a hotel on Sentosa, an envoy, the
remains of soldiers). Names that recur in confident matches from several outlets are learned
and count a little in later decisions. Drift into a later, different story is guarded against:

- only confident matches (score >= `LEARN_MIN_SCORE` without any learned name's help) that
  were published inside the story window teach anything; undated articles teach nothing;
- a name must recur in `MIN_ARTICLES` such matches from `MIN_OUTLETS` different outlets;
- a learned name is never a facet: the prefilter and the facet rules ignore it, so it cannot
  make an article a candidate, it only adds at most `LEARNED_WEIGHT` to the logit;
- a name must carry a word that is rare in general news (the shipped background prior), so
  "Associated Press" or "State Department" are never learned.

The sightings live in the database (monitor.db.story_state); this module holds the policy.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from monitor._types import Article, MatchResult
from monitor.matching.base import Story
from monitor.matching.document import Document
from monitor.matching.profile import background, proper_names
from monitor.matching.text import fold, parse_alias, tokenize

__all__ = ["LEARN_MIN_SCORE", "LEARNED_WEIGHT", "MIN_ARTICLES", "MIN_OUTLETS", "MAX_LEARNED", "learnable_names",
           "choose_learned", "with_learned", "learned_contribution", "outlet_of"]

LEARN_MIN_SCORE = 0.9        # what a confident match scores, without learned names
LEARNED_WEIGHT = 1.0         # logit added when two or more learned names occur (half for one)
MIN_ARTICLES = 3             # confident matches a name must recur in ...
MIN_OUTLETS = 2              # ... from at least this many outlets
MAX_LEARNED = 20             # names learned per story, the most seen first
_NAMES_PER_ARTICLE = 10      # names one article may teach, its most frequent first
_RARE_DF_SHARE = 0.02        # a learnable name has a word in fewer than 2% of background texts


def learnable_names(story: Story, article: Article, result: MatchResult) -> tuple[str, ...]:
    """The names this verdict may teach `story`: none unless it is confident, dated and in the window."""
    if result.story_id != story.id or not result.matched or article.published is None:
        return ()
    window = result.details.get("window")
    if isinstance(window, Mapping) and window.get("inside") is not True:
        return ()
    if not _inside(story, article):
        return ()
    if _score_without_learned(result) < LEARN_MIN_SCORE:
        return ()
    known = _known_tokens(story)
    counts = Counter(proper_names(f"{article.title}\n\n{article.body}"))
    names = []
    for name, _ in counts.most_common():
        tokens = tuple(tokenize(name))
        if len(name.split()) < 2 or not tokens or _has_known(tokens, known) or not _has_rare_word(tokens):
            continue
        names.append(name)
        if len(names) == _NAMES_PER_ARTICLE:
            break
    return tuple(names)


def choose_learned(seen: Iterable[tuple[str, int, int]]) -> tuple[str, ...]:
    """From (name, confident articles, distinct outlets) rows, the names a story learns."""
    kept = [(articles, outlets, name) for name, articles, outlets in seen
            if articles >= MIN_ARTICLES and outlets >= MIN_OUTLETS]
    kept.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return tuple(name for _, _, name in kept[:MAX_LEARNED])


def with_learned(stories: Sequence[Story], learned: Mapping[str, Sequence[str]]) -> list[Story]:
    """The stories with their learned names attached (names a story already knows are left out)."""
    out = []
    for story in stories:
        if not learned.get(story.id):   # nothing to check: reading every alias costs a tick with 100,000 stories
            out.append(story)
            continue
        known = _known_tokens(story)
        names = tuple(n for n in learned.get(story.id, ()) if not _has_known(tuple(tokenize(n)), known))
        out.append(replace(story, learned=names) if names else story)
    return out


def learned_contribution(story: Story, doc: Document) -> tuple[float, tuple[str, ...]]:
    """(score in [0, 1], names found): half for one learned name in the document, full for two."""
    if not story.learned:
        return 0.0, ()
    found = tuple(name for name in story.learned if doc.has_anywhere(parse_alias(name)))
    return min(1.0, len(found) / 2), found


def outlet_of(article: Article) -> str:
    """The outlet an article counts for: its named outlet, else its host."""
    if article.outlet:
        return fold(article.outlet)
    host = urlsplit(article.final_url or article.url).hostname or ""
    return host.removeprefix("www.")


def _inside(story: Story, article: Article) -> bool:
    when = article.published
    return when is not None and (story.start is None or when >= story.start) and (story.end is None or when <= story.end)


def _score_without_learned(result: MatchResult) -> float:
    logit = result.details.get("logit")
    learned = result.details.get("learned")
    if not isinstance(logit, (int, float)):
        return result.score
    if isinstance(learned, Mapping):
        logit -= float(learned.get("contribution", 0.0))
    return 1.0 / (1.0 + math.exp(-logit))


def _known_tokens(story: Story) -> frozenset[tuple[str, ...]]:
    """Every alias the story already has, as token tuples; a prefix alias ends with "*"."""
    aliases = [a for n in (*story.names, *story.places) for a in (n.name, *n.aliases, *n.weak)]
    aliases += [e for f in story.facets for e in f.entries]
    known = set()
    for alias in aliases:
        tokens = tuple(tokenize(alias.rstrip("*")))
        if tokens:
            known.add((*tokens[:-1], tokens[-1] + "*") if alias.strip().endswith("*") else tokens)
    return frozenset(known)


def _has_known(tokens: tuple[str, ...], known: frozenset[tuple[str, ...]]) -> bool:
    """Whether the name only restates what the story knows.

    True when a known alias of several words occurs inside it ("Chairman Kim Jong Un", "North
    Koreans" for "North Korea*"), or when fewer than two words are left once known one-word
    aliases are set aside ("President Trump", "Sentosa Island"); "Kim Yo Jong" is new.
    """
    def is_known(words: tuple[str, ...]) -> bool:
        if words in known:
            return True
        return any((*words[:-1], words[-1][:k] + "*") in known for k in range(1, len(words[-1]) + 1))

    n = len(tokens)
    if any(is_known(tokens[i:j]) for i in range(n) for j in range(i + 2, n + 1)):
        return True
    return sum(not is_known((t,)) for t in tokens) < 2


def _has_rare_word(tokens: tuple[str, ...]) -> bool:
    prior = background()
    return any(len(t) > 2 and prior.df.get(t, 0) < _RARE_DF_SHARE * prior.documents for t in tokens)
