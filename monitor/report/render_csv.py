"""The CSV report: one row per match, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io

from monitor.report._safe import iso
from monitor.report.digest import Digest, clamp_score

HEADER = ("story_id", "cluster", "url", "title", "outlet", "published", "score", "evidence", "via")
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render_csv(digest: Digest) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for story in digest.stories:
        for m in story.matches:
            writer.writerow(_guard(cell) for cell in (
                story.story.id,
                story.cluster_of.get(m.canonical_url, ""),
                m.url,
                m.title,
                m.outlet or "",
                iso(m.published) or "",
                f"{round(clamp_score(m.score), 3):g}",
                " | ".join(m.evidence),
                m.feed_url,
            ))
    return out.getvalue()


def _guard(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell
