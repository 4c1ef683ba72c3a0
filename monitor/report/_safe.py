"""Helpers every renderer shares for text that came from the web."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

# Control characters (terminal escapes among them) and the bidi controls that can reorder
# what a reader sees.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SAFE_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f-\x9f]+", re.IGNORECASE)


def one_line(text: str | None) -> str:
    """`text` without control characters, its whitespace collapsed to single spaces."""
    return " ".join(_INVISIBLE.sub(" ", text or "").split())


def link_target(url: str | None) -> str | None:
    """`url` when it may be a link's target: absolute http(s) with a host; else None."""
    if not url or not _SAFE_URL.fullmatch(url):
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return url if host else None


def iso(t: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset, to the second."""
    if t is None:
        return None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.isoformat(timespec="seconds")


def short_time(t: datetime | None) -> str:
    """A compact UTC time for people: 2018-05-24 14:05 UTC."""
    return (iso(t) or "")[:16].replace("T", " ") + " UTC" if t else "undated"
