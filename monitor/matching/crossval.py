"""A story scored on its own judged articles, with k-fold cross-validation.

    report = cross_validate(story, [(article, "on"), (article, "off"), ...])
    print(report.format())

The judged articles are dealt into folds (on and off in turn, so every fold holds both when it
can). For each fold the story's profile is moved by the judgments of the other folds only
(monitor.matching.feedback, as a new story version would move it), and the held-out fold is
scored by the matcher: each article is judged by a story that never saw its own judgment. `brief`
judgments (passing mentions) are scored neither way, as in `monitor eval --corpus`. The story as
defined, with no judgment, is scored on the same articles for comparison.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor._types import Article
from monitor.matching.base import Story
from monitor.matching.evaluate import metrics
from monitor.matching.feedback import moved_profile
from monitor.matching.matcher import Matcher

__all__ = ["FOLDS", "MIN_JUDGMENTS", "CrossValidation", "Scored", "TooFewJudgments", "cross_validate"]

FOLDS = 5
MIN_JUDGMENTS = 5           # judged on or off, with the article stored


class TooFewJudgments(ValueError):
    """Fewer judged articles than cross-validation needs."""


@dataclass(frozen=True, slots=True)
class Scored:
    true_positives: int
    false_positives: int
    misses: int
    true_negatives: int

    @property
    def precision(self) -> float:
        return self._metrics()[0]

    @property
    def recall(self) -> float:
        return self._metrics()[1]

    @property
    def f1(self) -> float:
        return self._metrics()[2]

    def _metrics(self) -> tuple[float, float, float, float]:
        on = self.true_positives + self.misses
        return metrics(self.true_positives, self.false_positives, on, self.false_positives + self.true_negatives)

    def line(self) -> str:
        return (f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
                f"({self.true_positives} caught, {self.misses} missed, {self.false_positives} false alarms, "
                f"{self.true_negatives} rightly left out)")


@dataclass(frozen=True, slots=True)
class CrossValidation:
    story_id: str
    on: int
    off: int
    brief: int                    # judged brief: not scored
    folds: int
    judged: Scored                # each fold scored by the profile its other folds moved
    as_defined: Scored            # the story with no judgment, on the same articles

    def format(self) -> str:
        return "\n".join([
            f"story {self.story_id}: {self.on + self.off} judged articles ({self.on} on, {self.off} off; "
            f"{self.brief} brief, not scored), {self.folds}-fold cross-validation",
            f"learning from the judgments: {self.judged.line()}",
            f"as defined, no judgments:    {self.as_defined.line()}",
        ])


def cross_validate(story: Story, judged: Sequence[tuple[Article, str]], *, folds: int = FOLDS) -> CrossValidation:
    """Score `story` (its reference profile as defined, no judgment applied) on its `judged`
    articles with `folds`-fold cross-validation (fewer folds when there are fewer articles).
    Raises TooFewJudgments below MIN_JUDGMENTS articles judged on or off."""
    by_label = {label: sorted((a for a, lab in judged if lab == label), key=lambda a: a.url) for label in ("on", "off")}
    dealt = [(a, label) for label in ("on", "off") for a in by_label[label]]
    if len(dealt) < MIN_JUDGMENTS:
        raise TooFewJudgments(f"story {story.id}: {len(dealt)} judged articles stored ({len(by_label['on'])} on, "
                              f"{len(by_label['off'])} off); scoring it on its judgments needs at least "
                              f"{MIN_JUDGMENTS}: judge more with `monitor judge --story {story.id} URL on|off`")
    k = max(2, min(folds, len(dealt)))
    fold_of = {a.url: i % k for i, (a, _) in enumerate(dealt)}
    plain = replace(story, judged={}, enabled=True)
    counts = [0, 0, 0, 0]
    for fold in range(k):
        training = [(a, label) for a, label in dealt if fold_of[a.url] != fold]
        terms = moved_profile(plain.terms, [_text(a) for a, label in training if label == "on"],
                              [_text(a) for a, label in training if label == "off"])
        matcher = Matcher([replace(plain, terms=terms) if terms is not None else plain])
        for article, label in dealt:
            if fold_of[article.url] == fold:
                _count(counts, _matched(matcher, article, story.id), label == "on")
    baseline = [0, 0, 0, 0]
    matcher = Matcher([plain])
    for article, label in dealt:
        _count(baseline, _matched(matcher, article, story.id), label == "on")
    return CrossValidation(story_id=story.id, on=len(by_label["on"]), off=len(by_label["off"]),
                           brief=sum(label == "brief" for _, label in judged), folds=k,
                           judged=Scored(*counts), as_defined=Scored(*baseline))


def _text(article: Article) -> tuple[str, str | None, str]:
    return article.title, article.summary, article.body


def _matched(matcher: Matcher, article: Article, story_id: str) -> bool:
    return any(r.story_id == story_id and r.matched for r in matcher.match(article))


def _count(counts: list[int], flagged: bool, on: bool) -> None:
    """counts: true positives, false positives, misses, true negatives."""
    counts[(0 if flagged else 2) if on else (1 if flagged else 3)] += 1
