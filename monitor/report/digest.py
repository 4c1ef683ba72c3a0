"""The digest model: what a report says about each story, before any format is chosen.

Renderers only lay this out; every decision (what is in the window, what counts as one text,
which copy is shown, what is highlighted) is taken here, once, for all formats.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from monitor._types import StoredMatch, StoredNearMiss
from monitor.report._safe import one_line
from monitor.report.cluster import cluster_matches, outlet_key

TimeUnit = Literal["hour", "day", "week", "month", "year"]
# A passage: runs of text, each flagged True where it names an evidence term.
Passage = tuple[tuple[str, bool], ...]

TOP_OUTLETS = 10
PASSAGE_CHARS = 400
# Coarser buckets are used only when a finer unit would need more than this many.
_MAX_BUCKETS = 400
_HOURLY_BELOW = timedelta(days=3)
_QUOTED = re.compile(r"[\"“”«»‘’]([^\"“”«»‘’]{3,60})[\"“”«»‘’]")
_NAME = re.compile(r"[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*)+|(?<=\s)[A-Z][\w'’-]{2,}")
# "title: summit, Kim Jong Un" or "the lead names Donald Trump and summit": a list follows.
_LIST_INTRO = re.compile(r":|\bnames\b")
_LETTER = re.compile(r"[^\W\d_]")
_MAX_TERMS = 20


@dataclass(frozen=True, slots=True)
class StoryInfo:
    id: str
    title: str
    reference_url: str | None = None
    description: str = ""

    @classmethod
    def of(cls, story: Any) -> StoryInfo:
        """What the digest shows of a loaded story (`monitor.matching`)."""
        reference = getattr(story, "reference", None)
        url = reference if isinstance(reference, str) or reference is None else getattr(reference, "url", None)
        return cls(id=story.id, title=story.title or story.id, reference_url=url,
                   description=getattr(story, "description", "") or "")


@dataclass(frozen=True, slots=True)
class Coverage:
    """One text, shown once: a lone article, or a cluster of copies."""

    cluster_id: str | None            # None when the article stands alone
    lead: StoredMatch                 # the copy shown: highest score, then earliest
    copies: tuple[StoredMatch, ...]   # every copy, earliest first
    passage: Passage

    @property
    def first(self) -> StoredMatch:
        """The copy that came first."""
        return self.copies[0]

    @property
    def score(self) -> float:
        return self.lead.score

    @property
    def also_carried_by(self) -> tuple[str, ...]:
        """Other outlets that carried this text, in the order they did."""
        lead_outlet = outlet_key(self.lead)
        names = dict.fromkeys(outlet_key(m) for m in self.copies)
        return tuple(name for name in names if name != lead_outlet)


@dataclass(frozen=True, slots=True)
class StoryFigures:
    matches: int
    outlets: int
    texts: int                 # distinct texts: clusters of copies count once
    clusters: int              # texts carried by more than one article
    languages: tuple[str, ...]
    first: datetime | None
    latest: datetime | None


@dataclass(frozen=True, slots=True)
class Timeline:
    unit: TimeUnit
    buckets: tuple[tuple[datetime, int], ...]   # (bucket start, matches), first to latest, gaps as 0


@dataclass(frozen=True, slots=True)
class StoryDigest:
    story: StoryInfo
    matches: tuple[StoredMatch, ...]            # chronological
    cluster_of: Mapping[str, str]               # canonical URL -> id, for copies only
    figures: StoryFigures
    timeline: Timeline
    top_outlets: tuple[tuple[str, int], ...]    # (outlet, matches), most first
    coverage: tuple[Coverage, ...]              # by relevance, then time
    # Decisions that fell just short of the threshold, closest first; None: not asked for.
    near_misses: tuple[StoredNearMiss, ...] | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    generated_at: datetime
    since: datetime | None
    until: datetime | None
    stories: tuple[StoryDigest, ...]


def build_digest(stories: Sequence[StoryInfo], matches: Sequence[StoredMatch], *,
                 since: datetime | None, until: datetime | None,
                 generated_at: datetime, near_misses: Sequence[StoredNearMiss] | None = None) -> Digest:
    """The digest of `matches` filed (`StoredMatch.when`) in [since, until), per story.

    Every story appears, in the order given, even without matches; matches of other
    stories are ignored. `near_misses` (the "why not", `monitor report --near-misses`) are
    filed the same way, closest to the threshold first; None leaves them out of the digest.
    """
    since, until = _utc_or_none(since), _utc_or_none(until)

    def inside(when: datetime) -> bool:
        return (since is None or _utc(when) >= since) and (until is None or _utc(when) < until)

    per_story: dict[str, list[StoredMatch]] = {s.id: [] for s in stories}
    for m in matches:
        if m.story_id in per_story and inside(m.when):
            per_story[m.story_id].append(m)
    missed: dict[str, list[StoredNearMiss]] = {s.id: [] for s in stories}
    for n in near_misses or ():
        if n.story_id in missed and inside(n.when):
            missed[n.story_id].append(n)
    return Digest(
        generated_at=_utc(generated_at), since=since, until=until,
        stories=tuple(replace(_story_digest(s, per_story[s.id], since, until),
                              near_misses=None if near_misses is None else tuple(
                                  sorted(missed[s.id], key=lambda n: (-n.logit, -_utc(n.when).timestamp(),
                                                                      n.canonical_url))))
                      for s in stories),
    )


def _story_digest(story: StoryInfo, matches: list[StoredMatch],
                  since: datetime | None, until: datetime | None) -> StoryDigest:
    clusters = cluster_matches(matches)
    coverage = sorted((_coverage(c.id, c.members) for c in clusters),
                      key=lambda cov: (tuple(-x for x in _score(cov.lead)), _utc(cov.first.when),
                                       cov.first.canonical_url))
    times = [_utc(m.when) for m in matches]
    outlets = Counter(outlet_key(m) for m in matches)
    return StoryDigest(
        story=story,
        matches=tuple(sorted(matches, key=lambda m: (_utc(m.when), m.url))),
        cluster_of={m.canonical_url: c.id for c in clusters if len(c.members) > 1 for m in c.members},
        figures=StoryFigures(
            matches=len(matches),
            outlets=len(outlets),
            texts=len(clusters),
            clusters=sum(len(c.members) > 1 for c in clusters),
            languages=tuple(sorted({m.lang for m in matches if m.lang})),
            first=min(times, default=None),
            latest=max(times, default=None),
        ),
        timeline=timeline(times, since, until),
        top_outlets=tuple(sorted(outlets.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_OUTLETS]),
        coverage=tuple(coverage),
    )


def _coverage(cluster_id: str, copies: tuple[StoredMatch, ...]) -> Coverage:
    lead = min(copies, key=lambda m: (tuple(-x for x in _score(m)), _utc(m.when), m.url))
    return Coverage(
        cluster_id=cluster_id if len(copies) > 1 else None,
        lead=lead,
        copies=copies,
        passage=highlight(passage_of(lead), highlight_terms(lead.evidence)),
    )


def _score(m: StoredMatch) -> tuple[float, float]:
    """The order of relevance: the score, then its logit (many confident matches score 1.00)."""
    return clamp_score(m.score), m.logit if m.logit is not None and m.logit == m.logit else float("-inf")


def clamp_score(score: float) -> float:
    """The score in [0, 1]; anything that is not a number counts as 0."""
    return min(1.0, max(0.0, score)) if score == score else 0.0


def passage_of(m: StoredMatch) -> str:
    """The matcher's best passage, else the first paragraph: one clean line, at most PASSAGE_CHARS.

    A passage that only repeats the headline says nothing the title does not, so it is skipped.
    """
    headline = one_line(m.title).casefold()
    candidates = (one_line(p) for p in (m.best_passage or "", *m.body.split("\n\n")))
    text = next((p for p in candidates if p and p.casefold() != headline), "")
    if len(text) <= PASSAGE_CHARS:
        return text
    cut = text.rfind(" ", 0, PASSAGE_CHARS)
    return text[:cut if cut > 0 else PASSAGE_CHARS] + "…"


def highlight_terms(evidence: Sequence[str]) -> tuple[str, ...]:
    """Terms the evidence names: quoted phrases, lists after a colon or "names", capitalised names.

    "title: summit, Kim Jong Un" gives "summit" and "Kim Jong Un"; numbers are left out.
    """
    terms: list[str] = []
    for sentence in evidence:
        terms += _QUOTED.findall(sentence)
        listed = _LIST_INTRO.split(sentence, maxsplit=1)
        if len(listed) == 2:
            terms += re.split(r",|;|\band\b", listed[1])
        terms += _NAME.findall(sentence)
    cleaned = dict.fromkeys(t.strip(" .\"'“”‘’«»") for t in terms)
    return tuple(t for t in cleaned if len(_LETTER.findall(t)) >= 3)[:_MAX_TERMS]


def highlight(text: str, terms: Sequence[str]) -> Passage:
    """Cut `text` into runs, flagging whole-word, case-insensitive occurrences of `terms`."""
    if not terms or not text:
        return ((text, False),) if text else ()
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    runs: list[tuple[str, bool]] = []
    pos = 0
    for hit in pattern.finditer(text):
        if hit.start() > pos:
            runs.append((text[pos:hit.start()], False))
        runs.append((hit.group(), True))
        pos = hit.end()
    if pos < len(text):
        runs.append((text[pos:], False))
    return tuple(runs)


def timeline(times: Sequence[datetime], since: datetime | None, until: datetime | None) -> Timeline:
    """Matches per bucket from the first coverage to the latest. Hourly when the report's window
    (else the coverage itself) is shorter than three days; coarser than daily only when daily
    buckets would be too many (a feed that dates an article 1970 must not make a huge chart)."""
    if not times:
        return Timeline("day", ())
    start, end = min(times), max(times) + timedelta(microseconds=1)
    window = until - since if since and until else end - start
    units: tuple[TimeUnit, ...] = ("hour",) if window < _HOURLY_BELOW else ()
    units += ("day", "week", "month", "year")
    for unit in units:
        starts = _bucket_starts(unit, start, end)
        if len(starts) <= _MAX_BUCKETS or unit == "year":
            break
    counts = Counter(_floor(unit, t) for t in times)
    return Timeline(unit, tuple((s, counts[s]) for s in starts))


def _bucket_starts(unit: TimeUnit, start: datetime, end: datetime) -> list[datetime]:
    starts: list[datetime] = []
    bucket = _floor(unit, start)
    # Years always fit (at most 10,000); finer units stop once they are too many.
    while bucket < end and (unit == "year" or len(starts) <= _MAX_BUCKETS):
        starts.append(bucket)
        try:
            bucket = _next(unit, bucket)
        except (OverflowError, ValueError):   # past year 9999
            break
    return starts


def _floor(unit: TimeUnit, t: datetime) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return t
    t = t.replace(hour=0)
    if unit == "day":
        return t
    if unit == "week":
        return t - timedelta(days=t.weekday())
    return t.replace(day=1) if unit == "month" else t.replace(month=1, day=1)


def _next(unit: TimeUnit, t: datetime) -> datetime:
    if unit in ("hour", "day", "week"):
        return t + timedelta(**{unit + "s": 1})
    if unit == "month":
        return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
    return t.replace(year=t.year + 1)


def _utc(t: datetime) -> datetime:
    """Aware UTC; a naive time is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _utc_or_none(t: datetime | None) -> datetime | None:
    return None if t is None else _utc(t)
