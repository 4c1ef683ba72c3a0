"""The prefilter of every story, as one inverted index: word -> the stories that need it.

A story is a candidate for a document when the document holds a word of each of its facets,
of each group of words its required query needs (one per operand of an AND; a `title:` word in
the title), one of its names when a required names rule gates it, and `anchors_needed` of its
anchors. An article visits only the posting lists of its own
words, so a hundred thousand stories cost what the few that share its words cost.

Kept compact for that many stories: a word's postings are one int while a single story needs
the word (most names and rare words) and an array of ints once several do; a facet posting
packs the story and the facet's number into one int; per-story figures are arrays.
"""
from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from monitor.matching.text import Alias

__all__ = ["StoryIndex", "shared_terms", "title_word", "prefilter_words"]

# Characters of a prefix alias tested before its whole length is looked up (see StoryIndex.candidates).
_HEAD = 3

Postings: TypeAlias = "int | array[int]"  # one story (or packed story and facet), or several

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


class StoryIndex:
    """Stories are added in order (their position is their number); then `candidates(vocabulary)`."""

    def __init__(self) -> None:
        self._count = 0
        # facet word -> packed (story << _LABEL_BITS | facet number); prefix aliases by their length.
        self._exact: dict[str, Postings] = {}
        self._prefix: dict[int, dict[str, Postings]] = {}
        self._heads: dict[int, set[str]] = {}
        self._facets = array("H")           # facets a candidate must engage (0: none)
        # Anchors of the stories without facets, by word; those of the others by story, read only
        # for the few that hold a word of every facet (a common anchor would make long lists).
        self._anchors: dict[str, Postings] = {}
        self._story_anchors: dict[int, tuple[str, ...]] = {}
        self._anchors_needed = array("H")   # anchors a candidate must hold (0: none)
        self._unfiltered: list[int] = []

    _LABEL_BITS = 16

    def __len__(self) -> int:
        return self._count

    def add(self, needs: Mapping[str, Sequence[Alias]], anchors: Sequence[str], anchors_needed: int) -> int:
        """Index the next story: `needs` maps each facet label to the aliases that satisfy it."""
        story = self._count
        self._count += 1
        if len(needs) >= 1 << self._LABEL_BITS:
            raise ValueError(f"a story may have at most {(1 << self._LABEL_BITS) - 1} facets")
        self._facets.append(len(needs))
        unique_anchors = list(dict.fromkeys(anchors))
        self._anchors_needed.append(anchors_needed if unique_anchors else 0)
        if needs and unique_anchors:
            self._story_anchors[story] = tuple(sys.intern(a) for a in unique_anchors)
        else:
            for anchor in unique_anchors:
                _add(self._anchors, anchor, story)
        if not needs and not unique_anchors:
            self._unfiltered.append(story)
        for number, aliases in enumerate(needs.values()):
            packed = story << self._LABEL_BITS | number
            for alias in aliases:
                if alias.prefix and len(alias.tokens) == 1:
                    _add(self._prefix.setdefault(len(alias.first), {}), alias.first, packed)
                    self._heads.setdefault(min(len(alias.first), _HEAD), set()).add(alias.first[:_HEAD])
                else:
                    _add(self._exact, alias.first, packed)
        return story

    def candidates(self, vocabulary: frozenset[str]) -> list[int]:
        """The stories, ascending, whose every facet has a word in `vocabulary` and which hold as
        many of their anchors as they need."""
        seen: dict[int, set[int]] = {}
        shift, mask = self._LABEL_BITS, (1 << self._LABEL_BITS) - 1
        exact = self._exact

        def engage(postings: Postings) -> None:
            for packed in _each(postings):
                story = packed >> shift
                labels = seen.get(story)
                if labels is None:
                    seen[story] = {packed & mask}
                else:
                    labels.add(packed & mask)

        for token in exact.keys() & vocabulary:
            engage(exact[token])
        if self._heads:
            for token in {t for n, heads in self._heads.items() for t in vocabulary if t[:n] in heads}:
                for length, table in self._prefix.items():
                    postings = table.get(token[:length])
                    if postings is not None:
                        engage(postings)
        anchored: Counter[int] = Counter()
        anchors = self._anchors
        for token in anchors.keys() & vocabulary:
            postings = anchors[token]
            if isinstance(postings, int):
                anchored[postings] += 1
            else:
                anchored.update(postings)
        facets, needed, story_anchors = self._facets, self._anchors_needed, self._story_anchors
        found = [s for s, labels in seen.items() if len(labels) == facets[s]
                 and (needed[s] == 0 or sum(a in vocabulary for a in story_anchors[s]) >= needed[s])]
        found += [s for s, n in anchored.items() if facets[s] == 0 and n >= needed[s]]
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
