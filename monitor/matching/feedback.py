"""Relevance feedback: a story's profile moved by the articles analysts judged (Rocchio).

    terms = moved_profile(story.terms, on=[(title, summary, body), ...], off=[...])

`monitor.db.story_models.rebuild` makes a story's next version with it, and `monitor eval
--judgments` moves the profile of each cross-validation fold with it: one piece of code for both.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from monitor.matching.profile import tfidf_vector
from monitor.matching.text import tokenize

__all__ = ["TOWARD_ON", "AWAY_FROM_OFF", "ArticleText", "moved_profile"]

# How far judged articles move a story's profile (Rocchio): toward the mean of those judged on,
# away from the mean of those judged off. The reference keeps the larger share.
TOWARD_ON = 0.5
AWAY_FROM_OFF = 0.25

ArticleText = tuple[str, str | None, str]     # title, summary, body


def moved_profile(terms: Mapping[str, float], on: Sequence[ArticleText],
                  off: Sequence[ArticleText]) -> dict[str, float] | None:
    """`terms` moved toward the mean of the articles judged on and away from the mean of those
    judged off, heaviest = 1; None when nothing moves it (no terms, no judged article)."""
    if not terms or not (on or off):
        return None
    moved = _unit(terms)
    for group, share in ((on, TOWARD_ON), (off, -AWAY_FROM_OFF)):
        vectors = [_unit(tfidf_vector(tokenize(t) * 2 + tokenize(s or "") + tokenize(b))) for t, s, b in group]
        for vector in vectors:
            for term, weight in vector.items():
                moved[term] = moved.get(term, 0.0) + share * weight / len(vectors)
    heaviest = max(moved.values(), default=0.0)
    if heaviest <= 0.0:
        return None
    return {t: round(w / heaviest, 4) for t, w in sorted(moved.items()) if round(w / heaviest, 4) > 0.0}


def _unit(vector: Mapping[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
    return {t: w / norm for t, w in vector.items()}
