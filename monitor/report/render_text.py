"""The terminal report: plain text, with a sparkline of the timeline and optional ANSI colour."""
from __future__ import annotations

from datetime import datetime

from monitor._types import StoredNearMiss
from monitor.report._safe import one_line, short_time
from monitor.report.cluster import outlet_key
from monitor.report.digest import Coverage, Digest, StoryDigest, Timeline, clamp_score
from monitor.wording import plural

# Characters of the text timeline at most: it must fit a terminal line with its labels.
SPARKLINE_WIDTH = 60
_BARS = "▂▃▄▅▆▇█"
_EMPTY_BAR = "▁"
_BOLD, _DIM, _YELLOW, _CYAN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[33m", "\x1b[36m", "\x1b[0m"


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and text else text


def render_text(digest: Digest, *, color: bool = False) -> str:
    style = _Style(color)
    window = (f"{short_time(digest.since) if digest.since else 'the beginning'} to "
              f"{short_time(digest.until) if digest.until else 'now'}")
    lines = [style(_BOLD, "Media monitoring digest"),
             f"Generated {short_time(digest.generated_at)}, covering {window}.", ""]
    for story in digest.stories:
        lines += _story(story, style)
        if story.near_misses is not None:
            lines += _near_misses(story.near_misses, style)
    return "\n".join(lines).rstrip("\n") + "\n"


def sparkline(counts: list[int]) -> str:
    """One character per count: a flat bar for 0, then seven heights up to the peak."""
    peak = max(counts, default=0)
    return "".join(_BARS[(c * len(_BARS) - 1) // peak] if c else _EMPTY_BAR for c in counts)


def fitted_sparkline(t: Timeline, width: int = SPARKLINE_WIDTH) -> tuple[str, str]:
    """(what one character stands for, the sparkline) of `t` in at most `width` characters."""
    per, buckets = fitted_buckets(t, width)
    return per, sparkline([n for _, n in buckets])


def fitted_buckets(t: Timeline, width: int = SPARKLINE_WIDTH) -> tuple[str, list[tuple[datetime, int]]]:
    """(the unit, e.g. "day" or "3 days"; the buckets summed to that unit) of `t` in at most `width`.

    Buckets are summed in runs of equal length when there are more than `width` of them, so
    four months of days read as "per 3 days" rather than a line no terminal can hold.
    """
    step = max(1, -(-len(t.buckets) // width))
    if step == 1:
        return t.unit, list(t.buckets)
    grouped = [(t.buckets[i][0], sum(n for _, n in t.buckets[i:i + step])) for i in range(0, len(t.buckets), step)]
    return f"{step} {t.unit}s", grouped


def peak_of(buckets: list[tuple[datetime, int]]) -> tuple[datetime, int]:
    """The busiest bucket (the earliest of equals)."""
    return max(buckets, key=lambda b: (b[1], -b[0].timestamp()))


def _story(s: StoryDigest, style: _Style) -> list[str]:
    f = s.figures
    lines = [style(_BOLD, f"== {one_line(s.story.title)} [{one_line(s.story.id)}]")]
    if s.story.description:
        lines.append(one_line(s.story.description))
    if s.story.reference_url:
        lines.append(f"Reference: {style(_CYAN, one_line(s.story.reference_url))}")
    if not f.matches:
        return lines + ["No coverage in this window.", ""]
    languages = ", ".join(one_line(lang) for lang in f.languages) or "unknown"
    lines += [
        f"{plural(f.matches, 'match')} from {plural(f.outlets, 'outlet')}; {plural(f.texts, 'distinct text')}, "
        f"{f.clusters} carried by several outlets; languages: {languages}.",
        f"First coverage {short_time(f.first)}, latest {short_time(f.latest)}.",
        _timeline(s.timeline),
        "Top outlets: " + ", ".join(f"{one_line(name)} ({n})" for name, n in s.top_outlets) + ".",
        "",
    ]
    for rank, coverage in enumerate(s.coverage, 1):
        lines += _coverage(rank, coverage, style)
    return lines


def _timeline(t: Timeline) -> str:
    # The peak is counted in the unit the line is drawn in, or the two would not agree.
    per, buckets = fitted_buckets(t)
    peak_start, peak = peak_of(buckets)
    return (f"Per {per}, {short_time(t.buckets[0][0])} to {short_time(t.buckets[-1][0])}: "
            f"{sparkline([n for _, n in buckets])}  (peak {plural(peak, 'match')} per {per}, "
            f"from {short_time(peak_start)})")


def _coverage(rank: int, c: Coverage, style: _Style) -> list[str]:
    m = c.lead
    lines = [
        f"{rank:>3}. [{clamp_score(m.score):.2f}] {style(_BOLD, one_line(m.title) or '(untitled)')}",
        f"     {one_line(outlet_key(m))}, {short_time(m.when)}  {style(_CYAN, one_line(m.url))}",
        style(_DIM, f"     via {one_line(m.feed_url)}"),
    ]
    if c.also_carried_by:
        first = c.first
        lines.append(style(_DIM, f"     also carried by {', '.join(one_line(o) for o in c.also_carried_by)}"
                                 f"; first: {one_line(outlet_key(first))}, {short_time(first.when)}"))
    if c.passage:
        quoted = "".join(style(_YELLOW, text) if hit else text for text, hit in c.passage)
        lines.append(f"     “{quoted}”")
    if m.evidence:
        lines.append(style(_DIM, "     why: " + "; ".join(one_line(e) for e in m.evidence)))
    return lines + [""]



def _near_misses(near: tuple[StoredNearMiss, ...], style: _Style) -> list[str]:
    if not near:
        return ["Why not: no near misses in this window.", ""]
    lines = [style(_BOLD, f"Why not: {len(near)} near misses (scored close under the threshold, not matched)")]
    for n in near:
        lines += [
            f"  - [{clamp_score(n.score):.2f}] {one_line(n.title) or '(untitled)'}",
            f"     {one_line(n.outlet or '') or 'unknown outlet'}, {short_time(n.when)}  {style(_CYAN, one_line(n.url))}",
            style(_DIM, f"     logit {n.logit:+.2f}, model version {one_line(n.model_version)}; why: "
                        + ("; ".join(one_line(e) for e in n.evidence) or "no evidence")),
        ]
    return lines + [""]
