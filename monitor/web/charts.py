"""Small inline SVG for the workspace: a story's sparkline (its digest timeline, drawn small).
The full timeline chart is the digest's own (`monitor.report.render_html.timeline_chart`)."""
from __future__ import annotations

from markupsafe import Markup

from monitor.report._safe import short_time
from monitor.report.digest import Timeline
from monitor.templating import environment
from monitor.wording import plural

SPARK_WIDTH = 120
SPARK_HEIGHT = 24


def sparkline(t: Timeline) -> Markup:
    """A line through the timeline's buckets, with a text alternative; empty text when no match."""
    counts = [n for _, n in t.buckets]
    if not counts:
        return Markup("")
    peak = max(counts) or 1
    step = SPARK_WIDTH / max(1, len(counts) - 1)
    points = " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 1 - n * (SPARK_HEIGHT - 2) / peak:.1f}"
                      for i, n in enumerate(counts))
    if len(counts) == 1:
        points += f" {SPARK_WIDTH},{SPARK_HEIGHT - 1 - counts[0] * (SPARK_HEIGHT - 2) / peak:.1f}"
    label = (f"matches per {t.unit} from {short_time(t.buckets[0][0])} to {short_time(t.buckets[-1][0])}, "
             f"peak {plural(peak, 'match')} per {t.unit}")
    return Markup(_templates.get_template("_spark.html").render(
        width=SPARK_WIDTH, height=SPARK_HEIGHT, label=label, points=points).rstrip("\n"))


_templates = environment("monitor.web")
