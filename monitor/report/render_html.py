"""The HTML report: one self-contained page for a browser or an email client.

No script, no external resource, inline CSS and SVG only. The page is a Jinja2 template
(templates/digest.html) that escapes everything; only http(s) addresses become links; the
Content-Security-Policy forbids scripts even if a mistake let markup through.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from markupsafe import Markup

from monitor.report._safe import short_time
from monitor.report.digest import Digest, Timeline
from monitor.templating import environment
from monitor.wording import plural

_CHART_HEIGHT = 60
_CHART_WIDTH = 728          # the column: body max-width 760 less 2 x 16 padding
_LABELS_HEIGHT = 14
_MAX_TICKS = 6
_TICK_SPACING = 90          # pixels per date label, so that labels never overlap
_TICK_FORMATS = {"hour": "%d %b %H:00", "day": "%d %b", "week": "%d %b", "month": "%b %Y", "year": "%Y"}


class _Bar(NamedTuple):
    x: str
    y: int
    width: str
    height: int
    start: datetime
    matches: int


class _Tick(NamedTuple):
    x: str
    anchor: str
    label: str


def render_html(digest: Digest) -> str:
    window = (f"{short_time(digest.since) if digest.since else 'the beginning'} to "
              f"{short_time(digest.until) if digest.until else 'now'}")
    return _templates.get_template("digest.html").render(digest=digest, window=window, chart=timeline_chart)


def timeline_chart(t: Timeline) -> Markup:
    """An inline SVG bar chart, one bar per bucket, each with its date and count as a tooltip,
    and a few dates under the axis."""
    counts = [n for _, n in t.buckets]
    peak = max(counts) or 1
    # The chart spans its column whatever the number of buckets (CSS scales it on narrow screens).
    width = _CHART_WIDTH
    bar = width / len(counts)
    bars = []
    for i, (start, n) in enumerate(t.buckets):
        if not n:
            continue
        h = max(1, round(n * (_CHART_HEIGHT - 4) / peak))
        bars.append(_Bar(f"{i * bar:.2f}", _CHART_HEIGHT - h, f"{max(1.0, bar - 1):.2f}", h, start, n))
    caption = (f"Matches per {t.unit}, {short_time(t.buckets[0][0])} to {short_time(t.buckets[-1][0])}; "
               f"peak {plural(peak, 'match')} per {t.unit}.")
    return Markup(_templates.get_template("chart.html").render(
        width=width, height=_CHART_HEIGHT + _LABELS_HEIGHT, axis_y=f"{_CHART_HEIGHT - 0.5}", tick_y=_CHART_HEIGHT + 11,
        ticks=_ticks(t, bar, width), bars=bars, caption=caption))


def _ticks(t: Timeline, bar: float, width: int) -> list[_Tick]:
    """Dates under the axis: the first and last bucket and a few evenly between, never crowded."""
    n = len(t.buckets)
    count = max(1, min(n, _MAX_TICKS, width // _TICK_SPACING))
    indices = sorted({round(k * (n - 1) / (count - 1)) for k in range(count)} if count > 1 else {0})
    labels = []
    for i in indices:
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        x = round(i * bar if anchor == "start" else (i + 1) * bar if anchor == "end" else i * bar + bar / 2, 2)
        labels.append(_Tick(f"{x:g}", anchor, t.buckets[i][0].strftime(_TICK_FORMATS[t.unit])))
    return labels


_templates = environment("monitor.report")
