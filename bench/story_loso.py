#!/usr/bin/env python3
"""Fit the derived-story constants across stories and report leave-one-story-out figures.

    bench/story_loso.py STORY_DIR [STORY_DIR ...]      (e.g. ../shared/corpus/stories/*)

Each STORY_DIR holds story.json (id, title, start, end, reference, optional corpus) and a labelled
corpus (corpus.jsonl by default; rows as in `monitor eval`). Every story is derived with the same
code as `monitor stories add`; each corpus row is scored by the derived story's own rules, and
the logistic model behind a derived story's score, sigmoid(bias + weight * similarity), is fitted:

- on every story but one, then scored on the one left out (one row per story: the figures a
  story the constants never saw gets);
- on all stories together: the constants to ship (monitor/matching/profile.py), printed beside
  the shipped ones.

Brief rows are left out of fitting and scoring; articles outside the story window are vetoed
and left out of the fit (the window decides them, not the similarity). Articles that name none
of the story's names are vetoed by its required `names` rule when scored, and kept in the fit:
the similarity means the same with or without the gate.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from monitor._types import Article
from monitor.matching.authoring import new_story, read_article
from monitor.matching.calibration import expected_calibration_error
from monitor.matching.loader import parse_story
from monitor.matching.matcher import Matcher
from monitor.matching.profile import DERIVED_BIAS, DERIVED_NAMES_SCALE, DERIVED_SIMILARITY_WEIGHT


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Row = tuple[float, float | None, bool, bool, bool]


def scored_rows(story_dir: Path) -> tuple[str, list[Row]]:
    """(story id, [(similarity, names similarity, inside the window, labelled on, names one of the
    story's names)]) for the non-brief rows; the names similarity is None for an article in the
    reference's own language."""
    meta = json.loads((story_dir / "story.json").read_text(encoding="utf-8"))
    read = read_article(str(story_dir / meta.get("reference", "reference.txt")), None)
    table, _ = new_story(meta["id"], read, title=meta.get("title"), start=_when(meta["start"]),
                         end=_when(meta["end"]))
    story = parse_story(table, origin="bench")
    matcher = Matcher([story])
    rows = []
    corpus = (story_dir / meta.get("corpus", "corpus.jsonl")).resolve()
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["label"] == "brief":
            continue
        published = _when(row["published"]) if row.get("published") else None
        article = Article(url=row["id"], final_url=row["id"], feed_url="", title=row.get("title", ""),
                          body=row.get("body", ""), summary=row.get("summary", ""), published=published,
                          fetched_at=published or datetime.now(UTC), lang=row.get("lang"))
        result, rules, _ = matcher.explain(article, story.id)
        inside = rules["window"].score > 0 if "window" in rules else True
        details = rules["reference"].details
        named = rules["names"].score > 0 if "names" in rules else True
        rows.append((details["similarity"], details.get("names_similarity"), inside, row["label"] == "on", named))
    return story.id, rows


def _p(x: float, w: float, b: float) -> float:
    return 1.0 / (1.0 + math.exp(-(b + w * x)))


def fit(rows: list[Row], l2: float = 0.01) -> tuple[float, float]:
    """Logistic regression of `on` on similarity (Newton's method, a little L2 on the weight),
    on the articles inside the window written in the reference's language."""
    data = [(x, 1.0 if y else 0.0) for x, names, inside, y, _ in rows if inside and names is None]
    w = b = 0.0
    for _ in range(100):
        gw = gb = hww = hwb = hbb = 0.0
        for x, y in data:
            p = _p(x, w, b)
            gw += (p - y) * x
            gb += p - y
            s = p * (1 - p)
            hww += s * x * x
            hwb += s * x
            hbb += s
        gw += l2 * w
        hww += l2
        det = hww * hbb - hwb * hwb
        dw = (hbb * gw - hwb * gb) / det
        db = (hww * gb - hwb * gw) / det
        w, b = w - dw, b - db
        if abs(dw) + abs(db) < 1e-9:
            break
    return w, b


def fit_names_scale(rows: list[Row], w: float, b: float) -> float:
    """The scale of the names similarity that best explains the other-language articles, given
    the fitted weight and bias (a grid of 0.01 steps: one number, found the same way every time)."""
    data = [(x, names, y) for x, names, inside, y, _ in rows if inside and names is not None]

    def loglik(scale: float) -> float:
        total = 0.0
        for x, names, y in data:
            p = min(1 - 1e-9, max(1e-9, _p(max(x, scale * names), w, b)))
            total += math.log(p if y else 1 - p)
        return total

    return max((i / 100 for i in range(0, 101)), key=lambda scale: (loglik(scale), -scale))


def score(rows: list[Row], w: float, b: float, scale: float) -> dict[str, float]:
    probs = [(_p(max(x, scale * (names or 0.0)), w, b) if inside and named else 0.0)
             for x, names, inside, _, named in rows]
    labels = [y for _, _, _, y, _ in rows]
    tp = sum(p >= 0.5 and y for p, y in zip(probs, labels))
    fp = sum(p >= 0.5 and not y for p, y in zip(probs, labels))
    fn = sum(p < 0.5 and y for p, y in zip(probs, labels))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "p": precision, "r": recall, "ece": expected_calibration_error(probs, labels)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("story_dirs", nargs="+", type=Path)
    args = ap.parse_args()
    data = dict(scored_rows(d) for d in args.story_dirs)
    if len(data) < 2:
        print("need at least two stories", file=sys.stderr)
        return 2
    print(f"{'held-out story':24} {'fitted on':44} {'weight':>7} {'bias':>6} {'names':>5}   F1     P     R    ECE")
    worst = 1.0
    for held in data:
        train = [r for sid, rows in data.items() if sid != held for r in rows]
        w, b = fit(train)
        scale = fit_names_scale(train, w, b)
        m = score(data[held], w, b, scale)
        worst = min(worst, m["f1"])
        others = ", ".join(s for s in data if s != held)
        print(f"{held:24} {others:44} {w:7.2f} {b:6.2f} {scale:5.2f}  "
              f"{m['f1']:.3f} {m['p']:.3f} {m['r']:.3f} {m['ece']:.3f}")
    every = [r for rows in data.values() for r in rows]
    w, b = fit(every)
    scale = fit_names_scale(every, w, b)
    print(f"fit on all {len(data)} stories: weight {w:.2f}, bias {b:.2f}, names scale {scale:.2f}; shipped: weight "
          f"{DERIVED_SIMILARITY_WEIGHT:.2f}, bias {DERIVED_BIAS:.2f}, names scale {DERIVED_NAMES_SCALE:.2f}")
    for sid, rows in data.items():
        m = score(rows, DERIVED_SIMILARITY_WEIGHT, DERIVED_BIAS, DERIVED_NAMES_SCALE)
        print(f"shipped constants on {sid:24} F1 {m['f1']:.3f} P {m['p']:.3f} R {m['r']:.3f} ECE {m['ece']:.3f}")
    print(f"leave-one-story-out: worst held-out F1 {worst:.3f} (target >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
