"""An upper bound of every bounded story's reference similarity with an article, all at once.

A story the reference rule decides (every derived story) can match, or come within the
near-miss margin, only when its cosine with the article reaches a floor that its bias, rule
weights and threshold fix (monitor.matching.matcher works it out). This index holds the
reference terms of every such story, each story's weights divided by its norm, as one sparse
table keyed by the terms' hashes. For an article it adds up, in one vectorised pass over the
postings of the article's own words, the article's normalised weight times the story's for
every story: the cosine the reference rule computes, with the story weights rounded up to half
precision, so the sum is never below it. A candidate whose bound stays under its floor can only
be "no match, not a near miss", so it need not be evaluated: the decisions are the same.

Python's string hash keys the terms (the same within one process; a copy in another process
bounds nothing and keeps every candidate); two words with one hash only add to a bound, never
take from it. An article in another language
than a story's reference may be compared on names alone (ReferenceRule's names path): the bound
then takes the highest that comparison can give.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["ReferenceBounds"]

# Below its floor by less than this, a bound keeps its story: sums in another order differ in the last bits.
_SLACK = 1e-9
# Summing this many postings costs about what evaluating one derived story does (bench/matching.py):
# a bound that would visit more than that many for each bounded candidate is not worth computing.
_POSTINGS_PER_EVALUATION = 2000
# Hashed at freeze and at every look-up: another process (a copy unpickled there) hashes it differently.
_SALT = "monitor.matching.bounds"


class ReferenceBounds:
    """Stories are numbered as the matcher numbers them; `add` those with a floor, then `freeze`."""

    def __init__(self) -> None:
        self._hashes: list[npt.NDArray[np.int64]] = []
        self._weights: list[npt.NDArray[np.float64]] = []
        self._numbers: list[int] = []
        self._floors: dict[int, float] = {}
        self._names: dict[int, tuple[str, float]] = {}   # story -> (reference language, names_scale)
        self._count = 0
        self._frozen = False

    def __bool__(self) -> bool:
        return bool(self._floors)

    def add(self, story: int, terms: Mapping[str, float], floor: float, *, lang: str | None = None,
            names_scale: float = 0.0, norm: float | None = None) -> None:
        """Bound `story` (its number) by its reference `terms` (of norm `norm`, worked out when
        not given): it is kept only when the bound reaches `floor` (math.inf: never), or
        names_scale does for an article not in `lang`."""
        if self._frozen:
            raise RuntimeError("the bounds are frozen")
        if norm is None:
            norm = math.sqrt(sum(w * w for w in terms.values()))
        self._floors[story] = floor
        if lang and names_scale > 0.0:
            self._names[story] = (lang, names_scale)
        if norm > 0.0:
            count = len(terms)
            self._hashes.append(np.fromiter(map(hash, terms), dtype=np.int64, count=count))
            self._weights.append(np.fromiter(terms.values(), dtype=np.float64, count=count) / norm)
            self._numbers.append(story)

    def freeze(self, stories: int) -> None:
        """Build the table for `stories` stories in all (bounded or not)."""
        self._frozen = True
        self._count = stories
        self._salt = hash(_SALT)
        sizes = np.fromiter((len(h) for h in self._hashes), dtype=np.int64, count=len(self._hashes))
        owners = np.repeat(np.asarray(self._numbers, dtype=np.int32), sizes)
        weights = np.concatenate(self._weights) if self._weights else np.zeros(0, dtype=np.float64)
        self._weights = []
        # Half precision, rounded up: a bound may be a little high, never low.
        half = weights.astype(np.float16)
        low = half.astype(np.float64) < weights
        half[low] = np.nextafter(half[low], np.float16(np.inf))
        del weights, low
        hashes = np.concatenate(self._hashes) if self._hashes else np.zeros(0, dtype=np.int64)
        self._hashes, self._numbers = [], []
        order = np.argsort(hashes, kind="stable")
        hashes, self._post_weights, self._post_stories = hashes[order], half[order], owners[order]
        del order, half, owners
        # Each word's postings: the run of equal hashes starting at its first.
        starts = np.flatnonzero(np.diff(hashes)) + 1 if len(hashes) else np.zeros(0, dtype=np.int64)
        starts = np.concatenate(([0], starts)) if len(hashes) else starts
        self._keys = hashes[starts]
        self._starts = np.append(starts, len(hashes)).astype(np.int64)
        self._floor = np.full(stories, -np.inf)
        for story, floor in self._floors.items():
            self._floor[story] = floor
        self._bounded = np.zeros(stories, dtype=bool)
        self._bounded[list(self._floors)] = True
        self._langs = sorted({lang for lang, _ in self._names.values()})
        self._lang_of = np.full(stories, -1, dtype=np.int16)
        self._names_scale = np.zeros(stories)
        for story, (lang, scale) in self._names.items():
            self._lang_of[story] = self._langs.index(lang)
            self._names_scale[story] = scale

    def _postings(self, vector: Mapping[str, float], norm: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Positions in the table of the article's words' postings (their first, then how many)
        and the article's normalised weight of each such word."""
        count = len(vector)
        hashes = np.fromiter(map(hash, vector), dtype=np.int64, count=count)
        weights = np.fromiter(vector.values(), dtype=np.float64, count=count) / norm
        at = np.searchsorted(self._keys, hashes)
        at[at == len(self._keys)] = 0
        found = self._keys[at] == hashes
        return at[found], weights[found]

    def similarity(self, vector: Mapping[str, float], norm: float) -> npt.NDArray[np.float64]:
        """Every story's bound of its reference cosine with the article's tf-idf `vector` (of norm `norm`)."""
        if not vector or norm <= 0.0 or not len(self._keys):
            return np.zeros(self._count)
        return self._sums(*self._postings(vector, norm))

    def _sums(self, at: npt.NDArray[np.int64], weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        starts = self._starts[at]
        lengths = self._starts[at + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(self._count)
        # Positions of every posting of the article's words, in one array: each run starts at its start.
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
        contributions = self._post_weights[offsets] * np.repeat(weights, lengths)
        sums = np.bincount(self._post_stories[offsets], weights=contributions, minlength=self._count)
        return sums.astype(np.float64, copy=False)   # float64 already, with weights: for the type checker

    def reachable(self, candidates: Sequence[int], vector: Mapping[str, float], norm: float,
                  lang: str | None) -> list[int]:
        """The candidates, in order, that are not bounded or whose bound reaches their floor."""
        if not candidates:
            return []
        if hash(_SALT) != self._salt:   # unpickled in another process: its hashes are not these
            return list(candidates)
        chosen = np.asarray(candidates, dtype=np.int64)
        bounded = self._bounded[chosen]
        if not bounded.any():
            return list(candidates)
        if not vector or norm <= 0.0 or not len(self._keys):
            best = np.zeros(len(chosen))
        else:
            at, weights = self._postings(vector, norm)
            visited = int((self._starts[at + 1] - self._starts[at]).sum())
            if visited > _POSTINGS_PER_EVALUATION * int(bounded.sum()):
                # Evaluating these few stories costs less than bounding them: the rules decide.
                return list(candidates)
            best = self._sums(at, weights)[chosen]
        if lang and self._langs:
            # ReferenceRule compares an article in another language on names alone; that similarity is at most 1.
            code = self._langs.index(lang) if lang in self._langs else -2
            story_langs = self._lang_of[chosen]
            other = (story_langs >= 0) & (story_langs != code)
            best = np.maximum(best, np.where(other, self._names_scale[chosen], 0.0))
        keep = ~bounded | (best >= self._floor[chosen] - _SLACK)
        return [int(s) for s in chosen[keep]]
