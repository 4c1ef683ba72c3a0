"""Digests of stored matches: the model (`build_digest`) and its formats (`render`)."""
from __future__ import annotations

from typing import Literal

from monitor.report.cluster import Cluster, cluster_matches
from monitor.report.digest import Coverage, Digest, StoryDigest, StoryFigures, StoryInfo, Timeline, build_digest
from monitor.report.render_csv import render_csv
from monitor.report.render_html import render_html
from monitor.report.render_json import render_json
from monitor.report.render_markdown import render_markdown
from monitor.report.render_text import render_text

Format = Literal["text", "markdown", "html", "json", "csv"]
FORMATS: tuple[Format, ...] = ("text", "markdown", "html", "json", "csv")

__all__ = ["FORMATS", "Cluster", "Coverage", "Digest", "Format", "StoryDigest", "StoryFigures",
           "StoryInfo", "Timeline", "build_digest", "cluster_matches", "render"]


def render(digest: Digest, fmt: Format, *, color: bool = False) -> str:
    """The digest in one of FORMATS. `color` (ANSI) applies to "text" only."""
    if fmt == "text":
        return render_text(digest, color=color)
    if fmt == "markdown":
        return render_markdown(digest)
    if fmt == "html":
        return render_html(digest)
    if fmt == "json":
        return render_json(digest)
    if fmt == "csv":
        return render_csv(digest)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
