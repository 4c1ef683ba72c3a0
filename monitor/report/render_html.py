"""The HTML report: one self-contained page for a browser or an email client.

No script, no external resource, inline CSS and SVG only. Everything that came from the web
is escaped, and only http(s) addresses become links; the Content-Security-Policy forbids
scripts even if a mistake let markup through.
"""
from __future__ import annotations

from html import escape

from monitor._types import StoredNearMiss
from monitor.report._safe import link_target, one_line, short_time
from monitor.report.cluster import outlet_key
from monitor.report.digest import Coverage, Digest, StoryDigest, Timeline, clamp_score
from monitor.wording import plural

_CHART_HEIGHT = 60
_CHART_WIDTH = 728          # the column: body max-width 760 less 2 x 16 padding
_LABELS_HEIGHT = 14
_MAX_TICKS = 6
_TICK_SPACING = 90          # pixels per date label, so that labels never overlap
_TICK_FORMATS = {"hour": "%d %b %H:00", "day": "%d %b", "week": "%d %b", "month": "%b %Y", "year": "%Y"}

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>Media monitoring digest</title>
<style>
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #ffffff; --muted: #5f6368; --accent: #2b5fb4;
  --line: #d9dce1; --mark: #fff1a8; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e8ea; --bg: #16171a; --muted: #a0a4ab; --accent: #8ab4f8; --line: #3a3d44;
    --mark: #5c4f00; }
}
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--fg); background: var(--bg); max-width: 760px; margin: 0 auto; padding: 16px; }
a { color: var(--accent); }
h1 { font-size: 1.5em; margin-bottom: 0; }
h2 { font-size: 1.25em; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 2em; }
.meta, .also, .why, figcaption { color: var(--muted); font-size: 0.9em; }
table.figures { border-collapse: collapse; margin: 8px 0; }
table.figures th, table.figures td { border: 1px solid var(--line); padding: 2px 8px; text-align: left; }
svg .bar { fill: var(--accent); }
figure { margin: 8px 0; }
svg.chart { display: block; width: 100%; height: auto; }
svg .axis { stroke: var(--line); }
svg .tick { fill: var(--muted); }
ol.coverage li { margin-bottom: 14px; }
.score { font-variant-numeric: tabular-nums; color: var(--muted); }
blockquote { margin: 4px 0; padding-left: 10px; border-left: 3px solid var(--line); }
mark { background: var(--mark); color: inherit; }
</style>
</head>
<body>
"""


def render_html(digest: Digest) -> str:
    window = (f"{short_time(digest.since) if digest.since else 'the beginning'} to "
              f"{short_time(digest.until) if digest.until else 'now'}")
    parts = [_HEAD, "<h1>Media monitoring digest</h1>\n",
             f'<p class="meta">Generated {_e(short_time(digest.generated_at))}, covering {_e(window)}.</p>\n']
    parts += [_story(s) + ("" if s.near_misses is None else _near_misses(s.near_misses)) for s in digest.stories]
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _e(text: str | None) -> str:
    return escape(one_line(text), quote=True)


def _link(label: str, url: str | None) -> str:
    """An <a> for an http(s) address; any other address is shown as text, never linked."""
    target = link_target(url)
    if target is None:
        return f"{_e(label)} <span class=\"meta\">({_e(url)})</span>" if url else _e(label)
    return f'<a href="{escape(target, quote=True)}" rel="noopener noreferrer nofollow">{_e(label)}</a>'


def _story(s: StoryDigest) -> str:
    f = s.figures
    out = [f'<section class="story" id="story-{_e(s.story.id)}">\n<h2>{_e(s.story.title)}</h2>\n',
           f'<p class="meta">Story <code>{_e(s.story.id)}</code></p>\n']
    if s.story.description:
        out.append(f"<p>{_e(s.story.description)}</p>\n")
    if s.story.reference_url:
        out.append(f"<p>Reference: {_link(s.story.reference_url, s.story.reference_url)}</p>\n")
    if not f.matches:
        out.append("<p>No coverage in this window.</p>\n</section>\n")
        return "".join(out)
    languages = ", ".join(f.languages) or "unknown"
    out.append(
        '<table class="figures"><tr><th>Matches</th><th>Outlets</th><th>Distinct texts</th>'
        "<th>Syndicated</th><th>Languages</th><th>First</th><th>Latest</th></tr>\n"
        f"<tr><td>{f.matches}</td><td>{f.outlets}</td><td>{f.texts}</td><td>{f.clusters}</td>"
        f"<td>{_e(languages)}</td><td>{_e(short_time(f.first))}</td><td>{_e(short_time(f.latest))}</td></tr>"
        "</table>\n")
    out.append(timeline_chart(s.timeline))
    outlets = ", ".join(f"{_e(name)} ({n})" for name, n in s.top_outlets)
    out.append(f"<p>Top outlets: {outlets}</p>\n<ol class=\"coverage\">\n")
    out += [_coverage(c) for c in s.coverage]
    out.append("</ol>\n</section>\n")
    return "".join(out)


def timeline_chart(t: Timeline) -> str:
    """An inline SVG bar chart, one bar per bucket, each with its date and count as a tooltip,
    and a few dates under the axis."""
    counts = [n for _, n in t.buckets]
    peak = max(counts) or 1
    # The chart spans its column whatever the number of buckets (CSS scales it on narrow screens).
    width = _CHART_WIDTH
    bar = width / len(counts)
    shapes = _ticks(t, bar, width)
    for i, (start, n) in enumerate(t.buckets):
        if not n:
            continue
        h = max(1, round(n * (_CHART_HEIGHT - 4) / peak))
        shapes.append(f'<rect class="bar" fill="#2b5fb4" x="{i * bar:.2f}" y="{_CHART_HEIGHT - h}" '
                     f'width="{max(1.0, bar - 1):.2f}" height="{h}"><title>{_e(short_time(start))}: {n}</title></rect>')
    caption = (f"Matches per {t.unit}, {short_time(t.buckets[0][0])} to {short_time(t.buckets[-1][0])}; "
               f"peak {plural(peak, 'match')} per {t.unit}.")
    height = _CHART_HEIGHT + _LABELS_HEIGHT
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(caption)}">'
            f'<line class="axis" stroke="#d9dce1" x1="0" y1="{_CHART_HEIGHT - 0.5}" x2="{width}" '
            f'y2="{_CHART_HEIGHT - 0.5}"/>{"".join(shapes)}</svg>'
            f"<figcaption>{_e(caption)}</figcaption></figure>\n")


def _ticks(t: Timeline, bar: float, width: int) -> list[str]:
    """Dates under the axis: the first and last bucket and a few evenly between, never crowded."""
    n = len(t.buckets)
    count = max(1, min(n, _MAX_TICKS, width // _TICK_SPACING))
    indices = sorted({round(k * (n - 1) / (count - 1)) for k in range(count)} if count > 1 else {0})
    labels = []
    for i in indices:
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        x = round(i * bar if anchor == "start" else (i + 1) * bar if anchor == "end" else i * bar + bar / 2, 2)
        labels.append(f'<text class="tick" fill="#5f6368" font-size="10" x="{x:g}" y="{_CHART_HEIGHT + 11}" '
                      f'text-anchor="{anchor}">{_e(t.buckets[i][0].strftime(_TICK_FORMATS[t.unit]))}</text>')
    return labels


def _coverage(c: Coverage) -> str:
    m = c.lead
    out = [f"<li>{_link(one_line(m.title) or '(untitled)', m.url)} "
           f'<span class="score">{clamp_score(m.score):.2f}</span>'
           f'<div class="meta">{_e(outlet_key(m))}, {_e(short_time(m.when))}, via {_e(m.feed_url)}</div>']
    if c.also_carried_by:
        out.append(f'<div class="also">Also carried by {_e(", ".join(c.also_carried_by))}; '
                   f"first: {_e(outlet_key(c.first))}, {_e(short_time(c.first.when))}</div>")
    if c.passage:
        # Passages are clean single lines already; runs keep their edge spaces.
        quoted = "".join(f"<mark>{escape(text, quote=True)}</mark>" if hit else escape(text, quote=True)
                         for text, hit in c.passage)
        out.append(f"<blockquote>{quoted}</blockquote>")
    if m.evidence:
        out.append(f'<div class="why">Why: {_e("; ".join(m.evidence))}</div>')
    out.append("</li>\n")
    return "".join(out)


def _near_misses(near: tuple[StoredNearMiss, ...]) -> str:
    out = ['<section class="near-misses">\n<h3>Why not: near misses</h3>\n']
    if not near:
        return "".join(out) + "<p>No near misses in this window.</p>\n</section>\n"
    out.append('<p class="meta">Scored close under the threshold, not matched:</p>\n<ol class="coverage">\n')
    for n in near:
        out.append(f"<li>{_link(one_line(n.title) or '(untitled)', n.url)} "
                   f'<span class="score">{clamp_score(n.score):.2f}</span>'
                   f'<div class="meta">{_e(n.outlet or "unknown outlet")}, {_e(short_time(n.when))}; '
                   f"logit {n.logit:+.2f}, model version <code>{_e(n.model_version)}</code></div>"
                   f'<div class="why">Why not: {_e("; ".join(n.evidence) or "no evidence")}</div></li>\n')
    out.append("</ol>\n</section>\n")
    return "".join(out)
