"""Feed documents (RSS 0.9x/1.0/2.0, Atom) -> `ParsedFeed`, with feedparser.

Every feed is hostile input: the body is size-capped, DTDs that declare entities are refused
before feedparser sees them, and whatever happens inside feedparser surfaces as `ParseError`.
"""
from __future__ import annotations

import email.utils
import hashlib
import html
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import lxml.html

from ._types import FeedEntry, ParsedFeed
from .exceptions import ParseError
from .urls import absolute_http_url, canonicalize

__all__ = ["DEFAULT_MAX_FEED_BYTES", "declares_entities", "parse_feed", "plausible_published"]

DEFAULT_MAX_FEED_BYTES = 10 * 1024 * 1024

_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_FUTURE_SLACK = timedelta(days=2)
_MAX_KEY_CHARS = 512
_FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})

_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_WIDE_ENTITY_DECLARATIONS = tuple(re.compile(re.escape("<!ENTITY".encode(codec)), re.IGNORECASE)
                                  for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))
_HTML_START = re.compile(rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
_TRAILING_ZONE = re.compile(r"^(.*\d)\s+\(?([A-Za-z]{3,5})\)?\s*$")
# Named zones feedparser does not know (it silently reads them as UTC). Where a name is
# ambiguous (IST) the reading most common in news feeds wins.
_ZONE_HOURS: dict[str, float] = {
    "KST": 9, "JST": 9, "HKT": 8, "SGT": 8, "PHT": 8, "AWST": 8, "ICT": 7, "WIB": 7, "IST": 5.5,
    "PKT": 5, "GST": 4, "MSK": 3, "EAT": 3, "EET": 2, "EEST": 3, "CAT": 2, "SAST": 2, "CET": 1,
    "CEST": 2, "MET": 1, "MEST": 2, "WAT": 1, "BST": 1, "WET": 0, "WEST": 1, "AEST": 10,
    "AEDT": 11, "ACST": 9.5, "ACDT": 10.5, "NZST": 12, "NZDT": 13, "HST": -10, "AKST": -9,
    "AKDT": -8, "NST": -3.5, "NDT": -2.5, "BRT": -3, "ART": -3,
}


def parse_feed(body: bytes, *, url: str, headers: Mapping[str, str],
               max_bytes: int = DEFAULT_MAX_FEED_BYTES) -> ParsedFeed:
    """Parse the feed document `body` fetched from `url` with response `headers` (lower-case names).

    An HTML page instead of a feed gives `ParsedFeed(is_html=True, alternates=...)`, the feed
    URLs it advertises. A malformed feed that still yields entries carries the parser's
    complaint in `problem`. Raises `ParseError`, and nothing else, for anything unusable.
    """
    if len(body) > max_bytes:
        raise ParseError(url, f"feed is larger than {max_bytes} bytes")
    if declares_entities(body):
        raise ParseError(url, "document type declares entities (refused: entity expansion attacks)")
    content_type = headers.get("content-type", "")
    try:
        # A stream, never bytes or str: feedparser opens a bytes/str argument as a file path
        # or URL when it can, and a hostile body must not name a local file.
        parsed = feedparser.parse(io.BytesIO(body), response_headers={
            "content-type": content_type, "content-location": url})
    except Exception as e:   # feedparser is not meant to raise; hostile input finds ways
        raise ParseError(url, f"feed parser failed: {e!r}") from e

    # An entry with neither link, title nor text is debris of a broken document.
    entries = tuple(entry for entry in (_entry(raw, url) for raw in parsed.get("entries") or ())
                    if entry.link or entry.title or entry.summary or entry.content_html)
    if not entries:
        if _looks_like_html(body, content_type):
            return _html_page(body, url)
        if parsed.get("bozo"):
            raise ParseError(url, f"not a usable feed: {parsed.get('bozo_exception')}")
        if not parsed.get("version"):
            raise ParseError(url, "not an RSS or Atom feed")

    feed = parsed.get("feed") or {}
    return ParsedFeed(
        title=_detail_text(feed, "title"),
        link=absolute_http_url(feed.get("link"), url),
        entries=entries,
        ttl_seconds=_ttl_seconds(feed.get("ttl")),
        problem=str(parsed.get("bozo_exception")) if parsed.get("bozo") else None,
    )


def plausible_published(value: datetime | None) -> datetime | None:
    """`value` in UTC, or None when absent or absurd (before 1990 or more than 2 days ahead)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value < _EARLIEST or value > datetime.now(UTC) + _FUTURE_SLACK:
        return None
    return value


def declares_entities(body: bytes) -> bool:
    """True when the XML document `body` declares entities (in any encoding XML allows by BOM)."""
    if _ENTITY_DECLARATION.search(body):
        return True
    # UTF-16 and UTF-32 documents hide the ASCII pattern between NUL bytes.
    return b"\x00" in body[:4] and any(pattern.search(body) for pattern in _WIDE_ENTITY_DECLARATIONS)


def _looks_like_html(body: bytes, content_type: str) -> bool:
    mime = content_type.split(";")[0].strip().lower()
    return mime in ("text/html", "application/xhtml+xml") or bool(_HTML_START.match(body[:4096].lstrip(b"\xef\xbb\xbf")))


def _html_page(body: bytes, url: str) -> ParsedFeed:
    try:
        tree = lxml.html.document_fromstring(body)
    except Exception as e:   # lxml raises several types on hostile markup
        raise ParseError(url, f"HTML page could not be parsed: {e!r}") from e
    base = url
    for href in tree.xpath("//head/base/@href")[:1]:
        base = absolute_http_url(str(href), url) or url
    alternates: list[str] = []
    for link in tree.xpath("//link[@href]"):
        rel = (link.get("rel") or "").lower().split()
        mime = (link.get("type") or "").split(";")[0].strip().lower()
        href = absolute_http_url(link.get("href"), base)
        if "alternate" in rel and mime in _FEED_TYPES and href and href not in alternates:
            alternates.append(href)
    titles = tree.xpath("//title/text()")
    return ParsedFeed(title=_plain(str(titles[0])) if titles else "", link=url, entries=(),
                      is_html=True, alternates=tuple(alternates))


def external_entry(*, id: str | None, link: str | None, title: str = "", summary_html: str = "",
                   content_html: str | None = None, author: str = "", published: datetime | None = None,
                   base_url: str | None = None) -> FeedEntry:
    """A FeedEntry from what another aggregator (reader, Miniflux) says of an item, normalised as
    the monitor's own feed entries are: an absolute http(s) link or none (so `javascript:` and
    the like are dropped), plain-text title, summary and author, a bounded key (`id`, else the
    canonical link, else a hash of the text), and a plausible publication time."""
    link = absolute_http_url(link, base_url)
    title, summary = _plain(title or ""), _plain(summary_html or "")
    key = _entry_key({"id": id}, link, title, summary)
    if published is not None and published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return FeedEntry(key=key, link=link, title=title, summary=summary, content_html=content_html or None,
                     author=_plain(author or ""), published=plausible_published(published))


def _entry(raw: Mapping[str, Any], feed_url: str) -> FeedEntry:
    link = absolute_http_url(raw.get("link"), feed_url)
    title = _detail_text(raw, "title")
    summary_html = raw.get("summary") or ""
    summary = _detail_text(raw, "summary")
    return FeedEntry(
        key=_entry_key(raw, link, title, summary),
        link=link,
        title=title,
        summary=summary,
        content_html=_content_html(raw, summary_html),
        author=_plain(raw.get("author") or ""),
        published=_published(raw),
    )


def _entry_key(raw: Mapping[str, Any], link: str | None, title: str, summary: str) -> str:
    key = str(raw.get("id") or "").strip()
    if not key and link:
        key = canonicalize(link)
    if not key:
        key = "sha1:" + hashlib.sha1(f"{title}\n{summary}".encode("utf-8", "surrogatepass")).hexdigest()
    elif len(key) > _MAX_KEY_CHARS:   # a key is stored and indexed: bound it
        key = "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


def _content_html(raw: Mapping[str, Any], summary_html: str) -> str | None:
    values = [c.get("value") or "" for c in raw.get("content") or () if "html" in (c.get("type") or "text/html")]
    if not values:
        return None
    longest = max(values, key=len)
    # feedparser copies an Atom entry's only <content> into `summary`: that is still full text.
    return longest if len(longest) > len(summary_html) or longest == summary_html else None


def _detail_text(node: Mapping[str, Any], name: str) -> str:
    value = node.get(name) or ""
    detail = node.get(f"{name}_detail") or {}
    if detail.get("type") == "text/plain":
        return _SPACES.sub(" ", value).strip()
    return _plain(value)


def _plain(markup: str) -> str:
    """Tags stripped, entities decoded, whitespace collapsed: cheap, for short feed fields."""
    return _SPACES.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()


def _published(raw: Mapping[str, Any]) -> datetime | None:
    for name in ("published", "updated"):
        parsed = raw.get(f"{name}_parsed")
        if parsed is None:
            continue
        zoned = _named_zone_datetime(raw.get(name) or "")
        if zoned is not None:
            return plausible_published(zoned)
        try:
            return plausible_published(datetime(*parsed[:6]).replace(tzinfo=UTC))
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _named_zone_datetime(text: str) -> datetime | None:
    """Dates like 'Tue, 12 Jun 2018 10:00:00 KST', which feedparser reads as UTC."""
    match = _TRAILING_ZONE.match(text.strip()) if len(text) < 80 else None
    if not match or match.group(2).upper() not in _ZONE_HOURS:
        return None
    fields = email.utils.parsedate(match.group(1))
    if fields is None:
        return None
    try:
        local = datetime(*fields[:6], tzinfo=UTC)
    except ValueError:
        return None
    return local - timedelta(hours=_ZONE_HOURS[match.group(2).upper()])


def _ttl_seconds(value: object) -> int | None:
    try:
        minutes = int(str(value).strip())
    except ValueError:
        return None
    return minutes * 60 if 0 < minutes <= 525_600 else None   # at most a year: larger is junk
