"""Where the atoms of a query occur in one field's positional postings."""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from monitor.matching.document import FieldIndex
from monitor.matching.text import is_cjk

__all__ = ["Span", "plan", "phrase_spans", "prefix_spans"]


@dataclass(frozen=True, slots=True)
class Span:
    first: int      # first and last token positions covered
    last: int
    start: int      # character offsets
    end: int


@lru_cache(maxsize=4096)
def plan(words: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], int]:
    """The (token, relative position) units a phrase of folded words must hit, and its width.
    A CJK word is the chain of its bigrams (or its single character)."""
    units: list[tuple[str, int]] = []
    position = 0
    for word in words:
        if is_cjk(word[0]):
            if len(word) == 1:
                units.append((word, position))
            else:
                units.extend((word[k:k + 2], position + k) for k in range(len(word) - 1))
            position += len(word)
        else:
            units.append((word, position))
            position += 1
    return tuple(units), position


def phrase_spans(words: tuple[str, ...], index: FieldIndex) -> Iterator[Span]:
    units, width = plan(words)
    postings = []
    for token, _ in units:
        positions = index.postings.get(token)
        if not positions:
            return
        postings.append(positions)
    # Walk the rarest unit's positions; look the others up by position.
    anchor = min(range(len(units)), key=lambda u: len(postings[u]))
    last_unit = len(units) - 1
    for anchor_position in postings[anchor]:
        base = anchor_position - units[anchor][1]
        if all(base + rel in postings[u] for u, (_, rel) in enumerate(units)):
            yield Span(base, base + width - 1, postings[0][base][0], postings[last_unit][base + units[last_unit][1]][1])


def prefix_spans(stem: str, index: FieldIndex) -> Iterator[Span]:
    """Every token of the field starting with `stem`: a range of the sorted vocabulary."""
    vocabulary = index.vocabulary
    i = bisect_left(vocabulary, stem)
    while i < len(vocabulary) and vocabulary[i].startswith(stem):
        for position, (start, end) in index.postings[vocabulary[i]].items():
            yield Span(position, position, start, end)
        i += 1
