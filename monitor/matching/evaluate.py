"""Offline evaluation of a story on a labelled corpus (JSON lines: title, body, summary,
published, lang, label on/brief/off, category).

`brief` rows (passing mentions) are not scored either way. Besides precision, recall and F1,
the report gives the TDT detection cost C_norm = P_miss + 4.9 * P_FA (lower is better; 1.0 is
what a system that flags nothing scores), a threshold sweep, a reliability table with the
expected calibration error (monitor.matching.calibration), and the misses and false alarms
by category.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor._types import Article
from monitor.exceptions import MonitorError
from monitor.matching.base import Story
from monitor.matching.calibration import ReliabilityBin, expected_calibration_error, reliability
from monitor.matching.matcher import Matcher

__all__ = ["EvalReport", "SweepPoint", "evaluate_corpus", "metrics"]

_SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
_FA_COST = 4.9   # TDT: a false alarm costs 4.9 misses (C_miss = 1, C_FA = 0.1, P_target = 0.02)


@dataclass(frozen=True, slots=True)
class SweepPoint:
    threshold: float
    precision: float
    recall: float
    f1: float
    c_norm: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    story_id: str
    threshold: float
    on: int
    off: int
    brief: int
    true_positives: int
    false_positives: int
    misses: Mapping[str, tuple[str, ...]]          # category -> row ids
    false_alarms: Mapping[str, tuple[str, ...]]    # category -> row ids
    precision: float
    recall: float
    f1: float
    c_norm: float
    sweep: tuple[SweepPoint, ...]
    scores: Mapping[str, float] = field(default_factory=dict)   # row id -> score
    non_english: tuple[int, int] = (0, 0)          # (right, scored) among rows whose lang is not "en"
    mean_ms: float = 0.0
    reliability: tuple[ReliabilityBin, ...] = ()   # scores against what the labels say, by bins
    calibration_error: float = 0.0                 # ECE over the on and off rows

    def format(self) -> str:
        lines = [
            f"story {self.story_id}: {self.on} on, {self.off} off, {self.brief} brief (not scored); "
            f"threshold {self.threshold:.2f}",
            f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"C_norm {self.c_norm:.3f}",
            f"non-English rows right: {self.non_english[0]} of {self.non_english[1]}; "
            f"{self.mean_ms:.2f} ms per article",
            "threshold sweep:",
            *(f"  {p.threshold:.2f}  P {p.precision:.3f}  R {p.recall:.3f}  F1 {p.f1:.3f}  C_norm {p.c_norm:.3f}"
              for p in self.sweep),
        ]
        lines += ["reliability (is a score of 0.8 right eight times in ten?):",
                  f"  {'scores':11} {'articles':>8} {'mean score':>10} {'share on':>8}",
                  *(f"  {b.low:.1f}-{b.high:.1f}    {b.count:>8} {b.mean_score:>10.2f} {b.observed:>8.2f}"
                    for b in self.reliability),
                  f"expected calibration error (ECE) {self.calibration_error:.3f}"]
        for heading, groups in (("misses", self.misses), ("false alarms", self.false_alarms)):
            total = sum(len(ids) for ids in groups.values())
            lines.append(f"{heading}: {total}")
            lines += [f"  {category}: {len(ids)} ({', '.join(ids)})" for category, ids in sorted(groups.items())]
        return "\n".join(lines)


def metrics(tp: int, fp: int, on: int, off: int) -> tuple[float, float, float, float]:
    """(precision, recall, F1, C_norm) from counts; precision is 1 when nothing was flagged."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / on if on else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    c_norm = (1 - recall if on else 0.0) + _FA_COST * (fp / off if off else 0.0)
    return precision, recall, f1, c_norm


def _article(row: Mapping[str, Any]) -> Article:
    published = None
    if row.get("published"):
        published = datetime.fromisoformat(row["published"]).astimezone(UTC)
    url = f"corpus:{row['id']}"
    return Article(url=url, final_url=url, feed_url=str(row.get("feed") or ""), title=row.get("title") or "",
                   body=row.get("body") or "", summary=row.get("summary") or "",
                   fetched_at=published or datetime.now(UTC), published=published,
                   lang=row.get("lang"), outlet=row.get("outlet"))


def evaluate_corpus(path: Path, stories: Sequence[Story], story_id: str, *,
                    select: Callable[[Mapping[str, Any]], bool] | None = None) -> EvalReport:
    """Score `story_id` on every row of the corpus (or those `select` keeps)."""
    try:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise MonitorError(f"cannot read corpus {path}: {e}") from e
    story = next((s for s in stories if s.id == story_id), None)
    if story is None:
        raise MonitorError(f"no story {story_id!r} among the stories given")
    matcher = Matcher([s for s in stories if s.id == story_id])
    rows = [r for r in rows if select is None or select(r)]
    scores: dict[str, float] = {}
    started = datetime.now(UTC)
    for row in rows:
        # Every candidate scored: the sweep and the calibration read scores far under the threshold too.
        results = matcher.match(_article(row), every_candidate=True)
        scores[row["id"]] = next((r.score for r in results if r.story_id == story_id), 0.0)
    elapsed_ms = (datetime.now(UTC) - started).total_seconds() * 1000

    labels = {r["id"]: r["label"] for r in rows}
    on = sum(1 for v in labels.values() if v == "on")
    off = sum(1 for v in labels.values() if v == "off")

    def counts(threshold: float) -> tuple[int, int]:
        tp = sum(1 for i, s in scores.items() if labels[i] == "on" and s >= threshold)
        fp = sum(1 for i, s in scores.items() if labels[i] == "off" and s >= threshold)
        return tp, fp

    sweep = tuple(SweepPoint(t, *metrics(*counts(t), on, off)) for t in _SWEEP)
    tp, fp = counts(story.threshold)
    misses: dict[str, list[str]] = {}
    false_alarms: dict[str, list[str]] = {}
    non_english = Counter[str]()
    for row in rows:
        label, flagged = row["label"], scores[row["id"]] >= story.threshold
        if label == "on" and not flagged:
            misses.setdefault(row.get("category", "?"), []).append(row["id"])
        if label == "off" and flagged:
            false_alarms.setdefault(row.get("category", "?"), []).append(row["id"])
        if label != "brief" and row.get("lang", "en") != "en":
            non_english["scored"] += 1
            non_english["right"] += flagged == (label == "on")
    precision, recall, f1, c_norm = metrics(tp, fp, on, off)
    judged = [(scores[i], label == "on") for i, label in labels.items() if label in ("on", "off")]
    judged_scores, judged_labels = [s for s, _ in judged], [y for _, y in judged]
    return EvalReport(story_id=story_id, threshold=story.threshold, on=on, off=off,
                      brief=sum(1 for v in labels.values() if v == "brief"),
                      true_positives=tp, false_positives=fp,
                      misses={k: tuple(v) for k, v in misses.items()},
                      false_alarms={k: tuple(v) for k, v in false_alarms.items()},
                      precision=precision, recall=recall, f1=f1, c_norm=c_norm, sweep=sweep, scores=scores,
                      non_english=(non_english["right"], non_english["scored"]),
                      mean_ms=elapsed_ms / len(rows) if rows else 0.0,
                      reliability=tuple(reliability(judged_scores, judged_labels)),
                      calibration_error=expected_calibration_error(judged_scores, judged_labels))
