"""The one way the monitor writes HTML: Jinja2 templates shipped in a package's `templates/`
folder, autoescaped, so that text from the web can only ever be text.

The filters every page shares make web text safe to show: `line` (one clean line), `when`
(a short UTC time), `href` (an http(s) address fit to be a link's target, else None),
`outlet` (the outlet a match is filed under), `clamp` (a score within 0-1) and `joined`.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from jinja2 import Environment, PackageLoader

from monitor.report._safe import link_target, one_line, short_time
from monitor.report.cluster import outlet_key
from monitor.report.digest import clamp_score


def joined(items: Iterable[str], separator: str = ", ") -> str:
    """Items joined as plain text (Jinja's `join` escapes them already, which `line` would escape again)."""
    return separator.join(items)


@cache
def environment(package: str) -> Environment:
    """The autoescaping environment for the templates in `package`'s `templates/` folder (one per package)."""
    env = Environment(loader=PackageLoader(package, "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(when=short_time, line=one_line, href=link_target, outlet=outlet_key, clamp=clamp_score,
                       joined=joined)
    return env
