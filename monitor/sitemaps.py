"""Sitemaps (sitemaps.org 0.9, with Google News' `news:` extension): the pages they list, with dates.

A sitemap is a `<urlset>` of `<url>`s (each a `<loc>`, maybe a `<lastmod>` and a
`<news:news><news:publication_date>`) or a `<sitemapindex>` of further sitemaps. Sitemaps come
from the web like feeds: parsed without network access or DTDs, refused when they declare
entities, gzip undone within the feed size cap.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import lxml.etree

from monitor.exceptions import ParseError
from monitor.feeds import declares_entities
from monitor.urls import is_http_url


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    date: datetime | None         # news:publication_date, else lastmod


@dataclass(frozen=True, slots=True)
class Sitemap:
    pages: tuple[SitemapEntry, ...]       # from a <urlset>
    sitemaps: tuple[SitemapEntry, ...]    # from a <sitemapindex>


def parse_sitemap(data: bytes, *, source: str, max_bytes: int) -> Sitemap:
    """The pages or sitemaps `data` lists; `ParseError` for anything else."""
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, source, max_bytes)
    if declares_entities(data):
        raise ParseError(source, "document type declares entities (refused: entity expansion attacks)")
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                  remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(data, parser=parser)
    except (lxml.etree.XMLSyntaxError, ValueError) as e:
        raise ParseError(source, f"not a sitemap (not well-formed XML: {e})") from e
    kind = lxml.etree.QName(root).localname if isinstance(root.tag, str) else ""
    if kind not in ("urlset", "sitemapindex"):
        raise ParseError(source, f"not a sitemap: the root element is <{kind or root.tag}>, not <urlset> or <sitemapindex>")
    items = []
    for item in root.iterchildren("{*}url" if kind == "urlset" else "{*}sitemap"):
        loc = _text(item, "{*}loc")
        if not is_http_url(loc):
            continue
        published = next((_date(e.text) for e in item.iter("{*}publication_date")), None)
        items.append(SitemapEntry(loc, published or _date(_text(item, "{*}lastmod"))))
    return Sitemap(tuple(items), ()) if kind == "urlset" else Sitemap((), tuple(items))


def _text(element: lxml.etree._Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _date(text: str | None) -> datetime | None:
    """W3C datetime (2018-06-12, 2018-06-12T10:00:00+00:00, ...Z) as aware UTC; None if unreadable."""
    if not text or not text.strip():
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _gunzip(data: bytes, source: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise ParseError(source, f"broken gzip: {e}") from e
    if len(out) > max_bytes:
        raise ParseError(source, f"larger than {max_bytes} bytes once decompressed")
    return out
