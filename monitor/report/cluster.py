"""Near-duplicate clustering: group the copies of one text that several outlets carry.

Wire copies get retitled, trimmed, lightly edited and wrapped in each site's furniture, so
two copies are compared by their bodies' 5-word shingles, never by title. Two articles are
copies when at least half of the shorter one's shingles reappear in the other (containment)
and the two share at least 15% of all their shingles (Jaccard, which keeps a long round-up
that quotes a short piece from swallowing it). Two different articles about the same event
share many words but few 5-word runs: on the labelled dev corpus, copy pairs reach
containment >= 0.65 and Jaccard >= 0.34, while no other pair exceeds 0.13 and 0.03.

Candidates come from an inverted index of shingle hashes, so the work grows with the number
of shared shingles, not with the square of the number of articles.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor._types import StoredMatch

SHINGLE_WORDS = 5
MIN_CONTAINMENT = 0.5
MIN_JACCARD = 0.15
# Fewer shingles than this (about a dozen words) is too little text to call a copy.
MIN_SHINGLES = 8
# A run of words that recurs in this many articles of one outlet, and at no other outlet, is
# that site's furniture (newsletter box, copyright line), never evidence of copying.
FURNITURE_ARTICLES = 3
# A new copy needs to find only one member of its cluster, so each shingle lists one article
# per cluster, and at most this many, so that no common run can make the index quadratic.
_POSTING_CAP = 32

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Cluster:
    """Matches that carry the same text. `members` are earliest first: members[0] came first."""

    id: str
    members: tuple[StoredMatch, ...]

    @property
    def first(self) -> StoredMatch:
        return self.members[0]


def cluster_id(canonical_url: str) -> str:
    """The id of a cluster whose earliest member has this canonical URL."""
    return "c-" + hashlib.sha256(canonical_url.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def shingles(text: str) -> frozenset[int]:
    """Hashes of the text's overlapping 5-word runs, case- and punctuation-insensitive."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return frozenset(map(hash, zip(*(words[k:] for k in range(SHINGLE_WORDS)))))


def is_copy(a: frozenset[int], b: frozenset[int]) -> bool:
    """Whether two shingle sets are copies of one text (see the module's docstring)."""
    if len(a) < MIN_SHINGLES or len(b) < MIN_SHINGLES:
        return False
    shared = len(a & b)
    return (shared >= MIN_CONTAINMENT * min(len(a), len(b))
            and shared >= MIN_JACCARD * (len(a) + len(b) - shared))


def cluster_matches(matches: Sequence[StoredMatch]) -> tuple[Cluster, ...]:
    """Partition `matches` into clusters of copies; an article alone is a cluster of one.

    Same canonical URL (or one's address being the other's canonical URL) is the same
    article. Clusters come earliest first; the result does not depend on the input order.
    """
    ordered = sorted(matches, key=_chronological)
    n = len(ordered)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)   # the root is always the earliest member

    by_address: dict[str, int] = {}
    for i, m in enumerate(ordered):
        for address in {m.canonical_url, m.url}:
            if address in by_address:
                union(by_address[address], i)
            else:
                by_address[address] = i

    texts = _without_furniture(ordered)
    postings: dict[int, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        if len(text) < MIN_SHINGLES:
            continue
        shared = Counter(j for s in text for j in postings.get(s, ()))
        shared_with_cluster: Counter[int] = Counter()
        for j, count in shared.items():
            shared_with_cluster[find(j)] += count
        # is_copy needs shared >= MIN_JACCARD * |union| >= MIN_JACCARD * |text|, and a cluster's
        # count bounds what any of its members shares with this text.
        enough = MIN_JACCARD * len(text)
        for j, _ in sorted(shared.items(), key=lambda item: (-item[1], item[0])):
            root = find(j)
            if root != find(i) and shared_with_cluster[root] >= enough and is_copy(text, texts[j]):
                union(i, j)
        root = find(i)
        for s in text:
            posting = postings[s]
            if len(posting) < _POSTING_CAP and all(find(j) != root for j in posting):
                posting.append(i)

    groups: dict[int, list[StoredMatch]] = defaultdict(list)
    for i, m in enumerate(ordered):
        groups[find(i)].append(m)
    return tuple(Cluster(cluster_id(members[0].canonical_url), tuple(members))
                 for _, members in sorted(groups.items()))


def _chronological(m: StoredMatch) -> tuple[object, ...]:
    return (m.when, m.fetched_at, m.canonical_url, m.url)


def outlet_key(m: StoredMatch) -> str:
    """The outlet's name, else its host: what tells one site from another."""
    return (m.outlet or "").strip() or (urlsplit(m.url).hostname or m.url)


def _without_furniture(matches: Iterable[StoredMatch]) -> list[frozenset[int]]:
    """Each body's shingles, less the runs that only its own outlet repeats across articles.

    A run found at another outlet too is kept: that is how wire text looks, even when one
    outlet republishes it at several addresses.
    """
    texts = [(outlet_key(m), shingles(m.body)) for m in matches]
    per_outlet: dict[str, Counter[int]] = defaultdict(Counter)
    for outlet, text in texts:
        per_outlet[outlet].update(text)
    outlets_with: Counter[int] = Counter()
    for counts in per_outlet.values():
        outlets_with.update(counts.keys())
    result = []
    for outlet, text in texts:
        counts = per_outlet[outlet]
        result.append(frozenset(s for s in text
                                if counts[s] < FURNITURE_ARTICLES or outlets_with[s] > 1))
    return result
