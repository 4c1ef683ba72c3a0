"""The prefilter of every story, as one inverted index: word -> the stories that need it.

A story is a candidate for a document when the document holds a word of each of its facets,
of each group of words its required query needs (one per operand of an AND; a `title:` word in
the title), one of its names when a required names rule gates it, and `anchors_needed` of its
anchors.

As Lucene's Monitor does, a story is indexed by the words of one of those needs only, its
rarest by the background prior (a surname rather than "talks"): an article visits the posting
lists of its own words, finds the few stories whose rarest need it meets, and checks their other
needs and anchors against its vocabulary. A hundred thousand stories cost what the few that
share its rare words cost. Stories with no needs are indexed by their anchors, counted.

Kept compact for that many stories: a word's postings are one int while a single story needs
the word (most names and rare words) and an array of ints once several do; per-story figures
are arrays.
"""
from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from monitor.matching.text import Alias

__all__ = ["StoryIndex", "shared_terms", "title_word", "prefilter_words"]

# Characters of a prefix alias tested before its whole length is looked up (see StoryIndex.candidates).
_HEAD = 3

Postings: TypeAlias = "int | array[int]"  # one story, or several

# A word a story needs in the title (a query's `title:word`) is indexed as this mark and the
# word; no token holds the mark, so it meets only the document's title words, marked alike.
_TITLE_MARK = "\x00t"


def title_word(token: str) -> str:
    return _TITLE_MARK + token


def prefilter_words(vocabulary: frozenset[str], title_tokens: Iterable[str]) -> frozenset[str]:
    """What `StoryIndex.candidates` looks up for a document: its words, and its title's words marked."""
    return vocabulary.union(_TITLE_MARK + t for t in title_tokens)


def _add(table: dict[str, Postings], key: str, value: int) -> None:
    found = table.get(key)
    if found is None:
        table[key] = value
    elif isinstance(found, int):
        table[key] = array("q", (found, value))
    else:
        found.append(value)


def _each(postings: Postings) -> Iterable[int]:
    return (postings,) if isinstance(postings, int) else postings


def _single_prefix(alias: Alias) -> bool:
    return alias.prefix and len(alias.tokens) == 1


def _starts_any(ordered: list[str], prefixes: Iterable[str]) -> bool:
    """Whether a word of the sorted list `ordered` starts with one of `prefixes`."""
    for prefix in prefixes:
        at = bisect_left(ordered, prefix)
        if at < len(ordered) and ordered[at].startswith(prefix):
            return True
    return False


class StoryIndex:
    """Stories are added in order (their position is their number); then `candidates(vocabulary)`."""

    def __init__(self) -> None:
        self._count = 0
        # indexed word -> stories; prefix aliases by their length.
        self._exact: dict[str, Postings] = {}
        self._prefix: dict[int, dict[str, Postings]] = {}
        self._heads: dict[int, set[str]] = {}
        # The needs each story must also meet (those not indexed), by story: each as the first
        # words of its aliases and the stems of its one-word prefix aliases.
        self._other_needs: dict[int, tuple[tuple[frozenset[str], tuple[str, ...]], ...]] = {}
        # Anchors of the stories without needs, by word; those of the others by story, read only
        # for the few that meet their needs (a common anchor would make long lists).
        self._anchors: dict[str, Postings] = {}
        self._story_anchors: dict[int, tuple[str, ...]] = {}
        self._anchors_needed = array("H")   # anchors a candidate must hold (0: none)
        self._unfiltered: list[int] = []

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _cost(aliases: Sequence[Alias], commonness: Mapping[str, int]) -> tuple[int, int]:
        """How many documents the need's words meet, about (a prefix: more than any word); fewer
        aliases break a tie."""
        words = sum(commonness.get(a.first.removeprefix(_TITLE_MARK), 0) if not _single_prefix(a) else 1 << 30
                    for a in aliases)
        return words, len(aliases)

    def add(self, needs: Mapping[str, Sequence[Alias]], anchors: Sequence[str], anchors_needed: int,
            commonness: Mapping[str, int] | None = None) -> int:
        """Index the next story: `needs` maps each facet label to the aliases that satisfy it;
        `commonness` (a word's document frequency in a background collection) picks the rarest."""
        story = self._count
        self._count += 1
        unique_anchors = list(dict.fromkeys(anchors))
        self._anchors_needed.append(min(anchors_needed, 0xFFFF) if unique_anchors else 0)
        groups = [tuple(aliases) for aliases in needs.values()]
        if any(not aliases for aliases in groups):
            return story   # a need no word can meet: never a candidate
        if not groups:
            if not unique_anchors:
                self._unfiltered.append(story)
            for anchor in unique_anchors:
                _add(self._anchors, anchor, story)
            return story
        if unique_anchors:
            self._story_anchors[story] = tuple(sys.intern(a) for a in unique_anchors)
        indexed = min(range(len(groups)), key=lambda i: self._cost(groups[i], commonness or {}))
        others = tuple((frozenset(sys.intern(a.first) for a in g if not _single_prefix(a)),
                        tuple(a.first for a in g if _single_prefix(a))) for i, g in enumerate(groups) if i != indexed)
        if others:
            self._other_needs[story] = others
        for alias in groups[indexed]:
            if _single_prefix(alias):
                _add(self._prefix.setdefault(len(alias.first), {}), alias.first, story)
                self._heads.setdefault(min(len(alias.first), _HEAD), set()).add(alias.first[:_HEAD])
            else:
                _add(self._exact, alias.first, story)
        return story

    def candidates(self, vocabulary: frozenset[str]) -> list[int]:
        """The stories, ascending, whose every need has a word in `vocabulary` and which hold as
        many of their anchors as they need."""
        met: set[int] = set()
        exact = self._exact
        for token in exact.keys() & vocabulary:
            met.update(_each(exact[token]))
        if self._heads:
            for token in {t for n, heads in self._heads.items() for t in vocabulary if t[:n] in heads}:
                for length, table in self._prefix.items():
                    postings = table.get(token[:length])
                    if postings is not None:
                        met.update(_each(postings))
        needed, story_anchors, other_needs = self._anchors_needed, self._story_anchors, self._other_needs
        ordered: list[str] = []   # the vocabulary sorted, for prefix tests, once one is needed

        def meets(words: frozenset[str], prefixes: tuple[str, ...]) -> bool:
            """Whether the document holds one of a need's words, or a word one of its prefixes starts."""
            if not vocabulary.isdisjoint(words):
                return True
            if not prefixes:
                return False
            if not ordered:
                ordered.extend(sorted(vocabulary))
            return _starts_any(ordered, prefixes)

        found = []
        for story in met:
            others = other_needs.get(story)
            if others is not None and not all(meets(words, prefixes) for words, prefixes in others):
                continue
            if needed[story] and sum(a in vocabulary for a in story_anchors[story]) < needed[story]:
                continue
            found.append(story)
        anchored: Counter[int] = Counter()
        anchors = self._anchors
        for token in anchors.keys() & vocabulary:
            postings = anchors[token]
            if isinstance(postings, int):
                anchored[postings] += 1
            else:
                anchored.update(postings)
        found += [s for s, n in anchored.items() if n >= needed[s]]
        return sorted(found + self._unfiltered)


# Weights already shared, by value: a derived story's weights are rounded to four decimals, so
# a hundred thousand stories use at most ten thousand distinct ones. Bounded for odd inputs.
_WEIGHTS: dict[float, float] = {}
_MAX_SHARED_WEIGHTS = 1 << 16


def shared_terms(terms: Mapping[str, float]) -> dict[str, float]:
    """`terms` with its words interned and its weights shared with every other story's: the same
    mapping, in the same order, without one copy of each word and number per story."""
    out = {}
    for term, weight in terms.items():
        shared = _WEIGHTS.get(weight)
        if shared is None:
            shared = weight
            if len(_WEIGHTS) < _MAX_SHARED_WEIGHTS:
                _WEIGHTS[weight] = weight
        out[sys.intern(term)] = shared
    return out
