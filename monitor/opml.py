"""OPML subscription lists: read the feeds out of one, write one (OPML 2.0).

OPML files come from other programs and other people: they are parsed without network
access, without loading DTDs, and a file whose DTD declares entities is refused outright.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import lxml.etree

from .exceptions import ParseError
from .feeds import declares_entities
from .urls import is_http_url

__all__ = ["read_opml", "write_opml"]

_MAX_OPML_BYTES = 20 * 1024 * 1024
# Characters XML 1.0 cannot carry; feed titles from hostile feeds may contain them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def read_opml(data: bytes, *, source: str = "OPML file") -> list[tuple[str, str | None]]:
    """The (xmlUrl, title) of every feed outline in `data`, nested outlines included, in order.

    Outlines whose xmlUrl is not an http(s) URL are skipped; a URL listed twice is returned
    once. `source` names the file in error messages. Raises `ParseError` for anything that is
    not a safe, well-formed OPML document.
    """
    if len(data) > _MAX_OPML_BYTES:
        raise ParseError(source, f"OPML file is larger than {_MAX_OPML_BYTES} bytes")
    if declares_entities(data):
        raise ParseError(source, "document type declares entities (refused: entity expansion attacks)")
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(data, parser=parser)
    except lxml.etree.XMLSyntaxError as e:
        raise ParseError(source, f"not well-formed XML: {e}") from e
    except ValueError as e:
        raise ParseError(source, f"not an XML document: {e}") from e
    if not isinstance(root.tag, str) or lxml.etree.QName(root).localname.lower() != "opml":
        raise ParseError(source, f"root element is <{root.tag}>, not <opml>")

    feeds: dict[str, str | None] = {}
    for outline in root.iter("{*}outline"):
        attributes = {name.lower(): value.strip() for name, value in outline.attrib.items()}
        url = attributes.get("xmlurl", "")
        if is_http_url(url) and url not in feeds:
            title = attributes.get("title") or attributes.get("text")
            feeds[url] = title if title and title != url else None
    return list(feeds.items())


def write_opml(feeds: Iterable[tuple[str, str | None]], title: str) -> bytes:
    """An OPML 2.0 document (UTF-8) listing `feeds`, (url, title) pairs, under `title`."""
    root = lxml.etree.Element("opml", version="2.0")
    head = lxml.etree.SubElement(root, "head")
    lxml.etree.SubElement(head, "title").text = _NOT_XML.sub("", title)
    body = lxml.etree.SubElement(root, "body")
    for raw_url, raw_title in feeds:
        url, feed_title = _NOT_XML.sub("", raw_url), _NOT_XML.sub("", raw_title or "")
        outline = lxml.etree.SubElement(body, "outline", type="rss", text=feed_title or url, xmlUrl=url)
        if feed_title:
            outline.set("title", feed_title)
    return bytes(lxml.etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
