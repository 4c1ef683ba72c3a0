"""How far a story's scores can be read as probabilities: reliability bins and their error.

A score of 0.8 should mean that about eight in ten articles scored so are on the story. The
reliability table puts scores in equal-width bins and sets each bin's mean score beside the
share of its articles that really are on the story; the expected calibration error (ECE) is the
gap between the two, averaged over bins weighted by how many articles each holds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ReliabilityBin", "reliability", "expected_calibration_error"]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_score: float
    observed: float      # share of the bin's articles labelled on the story


def reliability(scores: Sequence[float], labels: Sequence[bool], bins: int = 10) -> list[ReliabilityBin]:
    """The non-empty bins of [0, 1] split in `bins` equal parts; a score of 1 falls in the last."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for score, label in zip(scores, labels):
        grouped[min(bins - 1, max(0, int(score * bins)))].append((score, label))
    return [ReliabilityBin(low=i / bins, high=(i + 1) / bins, count=len(items),
                           mean_score=sum(s for s, _ in items) / len(items),
                           observed=sum(1 for _, y in items if y) / len(items))
            for i, items in enumerate(grouped) if items]


def expected_calibration_error(scores: Sequence[float], labels: Sequence[bool], bins: int = 10) -> float:
    total = len(scores)
    if total == 0:
        return 0.0
    return sum(b.count / total * abs(b.mean_score - b.observed) for b in reliability(scores, labels, bins))
