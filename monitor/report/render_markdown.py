"""The Markdown report. Web text is escaped so that it can never become markup or a link."""
from __future__ import annotations

import re

from monitor._types import StoredNearMiss
from monitor.report._safe import link_target, one_line, short_time
from monitor.report.cluster import outlet_key
from monitor.report.digest import Coverage, Digest, StoryDigest, clamp_score
from monitor.report.render_text import fitted_sparkline

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the
# ones that can start emphasis, code, links, raw HTML, entities or table cells mid-line (web
# text never starts a line here, so heading and list markers need no escape).
_SPECIAL = re.compile(r"([\\`*_\[\]()<>|~&])")


def render_markdown(digest: Digest) -> str:
    window = (f"{short_time(digest.since) if digest.since else 'the beginning'} to "
              f"{short_time(digest.until) if digest.until else 'now'}")
    lines = ["# Media monitoring digest", "",
             f"Generated {short_time(digest.generated_at)}, covering {window}.", ""]
    for story in digest.stories:
        lines += _story(story)
        if story.near_misses is not None:
            lines += _near_misses(story.near_misses)
    return "\n".join(lines).rstrip("\n") + "\n"


def md(text: str | None) -> str:
    """Web text as inert Markdown: one line, every special character escaped."""
    return _escape(one_line(text))


def _escape(text: str) -> str:
    return _SPECIAL.sub(r"\\\1", text)


def md_link(label: str, url: str | None) -> str:
    """A link when `url` is http(s); otherwise the label and the address as plain text."""
    target = link_target(url)
    if target is None:
        return f"{md(label)} ({md(url)})" if url else md(label)
    return f"[{md(label)}](<{target.replace('<', '%3C').replace('>', '%3E')}>)"


def _story(s: StoryDigest) -> list[str]:
    f = s.figures
    lines = [f"## {md(s.story.title)}", "", f"Story id: {md(s.story.id)}"]
    if s.story.description:
        lines += ["", md(s.story.description)]
    if s.story.reference_url:
        lines += ["", "Reference: " + md_link(s.story.reference_url, s.story.reference_url)]
    lines.append("")
    if not f.matches:
        return lines + ["No coverage in this window.", ""]
    t = s.timeline
    per, line = fitted_sparkline(t)
    lines += [
        "| matches | outlets | distinct texts | syndicated | languages | first | latest |",
        "|---:|---:|---:|---:|---|---|---|",
        f"| {f.matches} | {f.outlets} | {f.texts} | {f.clusters} | "
        f"{', '.join(md(lang) for lang in f.languages) or 'unknown'} | "
        f"{short_time(f.first)} | {short_time(f.latest)} |",
        "",
        f"Per {per} from {short_time(t.buckets[0][0])}: `{line}`",
        "",
        "Top outlets: " + ", ".join(f"{md(name)} ({n})" for name, n in s.top_outlets),
        "",
        "### Coverage",
        "",
    ]
    for rank, coverage in enumerate(s.coverage, 1):
        lines += _coverage(rank, coverage)
    return lines


def _coverage(rank: int, c: Coverage) -> list[str]:
    m = c.lead
    lines = [f"{rank}. **{md_link(one_line(m.title) or '(untitled)', m.url)}** "
             f"— {md(outlet_key(m))}, {short_time(m.when)}, score {clamp_score(m.score):.2f}, via {md(m.feed_url)}"]
    if c.also_carried_by:
        lines.append(f"   - also carried by {', '.join(md(o) for o in c.also_carried_by)} "
                     f"(first: {md(outlet_key(c.first))}, {short_time(c.first.when)})")
    if c.passage:
        # Passages are clean single lines already; runs keep their edge spaces.
        quoted = "".join(f"**{_escape(text)}**" if hit else _escape(text) for text, hit in c.passage)
        lines.append(f"   - “{quoted}”")
    if m.evidence:
        lines.append("   - why: " + "; ".join(md(e) for e in m.evidence))
    return lines + [""]


def _near_misses(near: tuple[StoredNearMiss, ...]) -> list[str]:
    lines = ["### Why not: near misses", ""]
    if not near:
        return lines + ["No near misses in this window.", ""]
    lines += ["Scored close under the threshold, not matched:", ""]
    for n in near:
        lines += [f"- **{md_link(one_line(n.title) or '(untitled)', n.url)}** — {md(n.outlet or 'unknown outlet')}, "
                  f"{short_time(n.when)}, score {clamp_score(n.score):.2f} (logit {n.logit:+.2f}, "
                  f"model version {md(n.model_version)})",
                  "  - why not: " + ("; ".join(md(e) for e in n.evidence) or "no evidence")]
    return lines + [""]
