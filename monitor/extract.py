"""Article pages -> `ExtractedPage`: the main text (trafilatura) and the page's metadata.

`extract_page` is a plain top-level function of bytes so that it can run in a process pool.
Pages are hostile input: the size is capped, decoding never fails, and any failure inside
lxml or trafilatura yields an empty body instead of an exception.
"""
from __future__ import annotations

import codecs
import copy
import functools
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lxml.etree
import lxml.html

from ._types import ExtractedPage
from .feeds import plausible_published
from .urls import absolute_http_url

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier
    from trafilatura.settings import Document

__all__ = ["DEFAULT_MAX_PAGE_BYTES", "EXTRACTION_MODULES", "declared_language", "decode_html", "extract_page", "guess_language",
           "html_to_text", "warm_up"]

# What extract_page imports on first use (a few tenths of a second): the process that only
# fetches and stores never needs them; extraction workers load them once, before forking.
EXTRACTION_MODULES = ("monitor.extract", "trafilatura", "htmldate", "py3langid.langid", "monitor.extract_warm")

DEFAULT_MAX_PAGE_BYTES = 5 * 1024 * 1024

_log = logging.getLogger(__name__)

# Blocks whose text is mostly the text of links are navigation, related stories and teasers;
# links shorter than this (a name, "here", "Reuters") are the article's own references.
_LINK_DENSITY = 0.5
_MIN_LINK_TEXT = 15
_NON_WORD = re.compile(r"\W+")
_BARE_URL = re.compile(r"^\s*(?:https?://|www\.)\S+\s*$", re.IGNORECASE)
_COPYRIGHT = re.compile(r"^\s*(?:©|\(c\)\s|copyright\b)", re.IGNORECASE)
# The headline is looked for among the first blocks only: further down, the same words are prose.
_HEADLINE_BLOCKS = 3

# Our own metadata lookup finds full timestamps; htmldate's date (a day) is only the fallback,
# so its slow extensive search is not worth running.
_DATE_PARAMS: dict[str, Any] = {"extensive_search": False, "original_date": True}
# A URL in a <meta> would become the site name of a page that names none.
_URL_META = frozenset({"og:url", "twitter:url"})

_PARSER = lxml.html.HTMLParser(encoding="utf-8", collect_ids=False, default_doctype=False,
                               remove_comments=True, remove_pis=True, no_network=True)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CODEC_FOR_LABEL = {"latin-1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252"}
_LANG_CODE = re.compile(r"^\s*([A-Za-z]{2})(?:[-_][A-Za-z0-9]+)*\s*$")
# A guess needs some text, and a language more likely than all the others together.
_LANGUAGE_SAMPLE = 3000
_LANGUAGE_MIN_CHARS = 40
_LANGUAGE_MIN_PROBABILITY = 0.5
# Line breaks of the markup travel as this character until whitespace is collapsed.
_BREAK = "\x00"
_WHITESPACE = re.compile(r"\s+")
_BLOCK_BREAK = re.compile(r"\x00\s*\x00")
# Soft hyphens and zero-width characters split words for the eye only.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"))

_PUBLISHED_META = ("article:published_time", "og:published_time", "datepublished", "pubdate",
                   "publishdate", "dc.date.issued", "dc.date", "dcterms.created", "sailthru.date",
                   "parsely-pub-date", "date")
_BLOCK_TAGS = frozenset({"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5",
                         "h6", "blockquote", "pre", "table", "tr", "section", "article", "header",
                         "footer", "aside", "figure", "figcaption", "hr", "address", "main"})
_NEVER_TEXT = ("script", "style", "svg", "iframe", "object", "embed", "canvas", "link", "meta", "template")
# trafilatura's cleaning list (MANUALLY_CLEANED in 2.3) but for _NEVER_TEXT's and for the form,
# figure and math that it keeps or turns into text at times.
_ALWAYS_CLEANED = ("aside", "footer", "nav", "menu", "head", "noscript", "noindex", "dialog", "time", "fencedframe",
                   "applet", "audio", "video", "picture", "source", "track", "map", "area", "frame", "frameset", "blink",
                   "marquee", "button", "datalist", "fieldset", "input", "label", "legend", "menuitem", "optgroup",
                   "option", "output", "param", "progress", "rp", "rt", "rtc", "select", "textarea", "use")
_CLEANED_BY_TRAFILATURA = (*_ALWAYS_CLEANED, "form", "figure", "math")
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})



def extract_page(html: bytes, *, url: str, encoding: str | None = None,
                 max_bytes: int = DEFAULT_MAX_PAGE_BYTES) -> ExtractedPage:
    """The article in the page `html` fetched from `url`; `encoding` is the HTTP charset, if any.

    Input beyond `max_bytes` is cut off. Never raises: a page without an article, or one that
    cannot be parsed, gives `ExtractedPage(body="")`.
    """
    try:
        return _extract(html[:max_bytes], url, encoding)
    except Exception as e:   # lxml/trafilatura on hostile markup: the page just has no article
        _log.debug("extraction failed for %s: %r", url, e)
        return ExtractedPage(body="")


def html_to_text(fragment: str) -> str:
    """An HTML fragment (a feed's content:encoded) as plain text, blocks separated by a blank line."""
    if not fragment.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(fragment.encode("utf-8", "surrogatepass"), create_parent="div",
                                             parser=_PARSER)
    except Exception:   # lxml on hostile markup; there is no text to give
        return ""
    return "\n\n".join(_block_texts(root))


def _extract(html: bytes, url: str, encoding: str | None) -> ExtractedPage:
    import trafilatura
    from htmldate import find_date

    text = decode_html(html, encoding)
    if not text.strip():
        return ExtractedPage(body="")
    tree = lxml.html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=_PARSER)
    # Read our metadata first: the tree is then cut down for trafilatura.
    lang = declared_language(tree)
    canonical = _canonical_url(tree, url)
    published = _published(tree) or _day(find_date(tree, url=url, **_DATE_PARAMS))
    meta = _metadata(tree)
    link_texts = _link_texts(tree)
    # Elements that never hold article text, dropped here in one C call: trafilatura would copy
    # the tree with them and then remove them one by one.
    lxml.etree.strip_elements(tree, *_NEVER_TEXT, with_tail=False)
    # Measured on the article-extraction benchmark (181 real pages, word 4-gram F1; plain
    # `trafilatura.extract` 0.953): recall focus without the readability/jusText second opinion
    # ("fast") 0.963 at half the time of precision mode with it (0.964); balanced focus 0.962.
    # Recall keeps all of the article and some of its surroundings, which `_article_focus` and
    # `_article_blocks` then take off (0.973; bench/extraction.py). Comments stay out (they are
    # not the article); tables stay in. The body is read from trafilatura's XML tree: the "xml"
    # format spares it the plain-text rendering of that tree that the default "python" format adds.
    doc = trafilatura.bare_extraction(_without_boilerplate(_article_focus(tree)), url=url, with_metadata=False,
                                      favor_recall=True, fast=True, include_comments=False, include_tables=True,
                                      output_format="xml")
    found = None if doc is None or isinstance(doc, dict) else doc.body
    if found is None:
        return ExtractedPage(body="", lang=lang, canonical_url=canonical, published=published)
    body = "\n\n".join(_article_blocks(list(_trafilatura_blocks(found)), meta.title, link_texts))
    return ExtractedPage(
        body=body,
        title=meta.title or None,
        author=meta.author or None,
        published=published,
        site_name=meta.sitename or None,
        lang=lang or guess_language(body),
        canonical_url=canonical,
        description=meta.description or None,
    )


def _article_focus(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The page's article element, alone, when it holds most of the page's paragraph text; else the page.

    A page that marks its article (elements with itemprop="articleBody", else <article>) says
    where the body is: extracting from that element alone leaves out the boxes around it that
    recall mode would keep (teasers, promotions, captions of other stories), and spares
    trafilatura the cleaning of the rest of the page. "Most of the paragraph text" guards against
    markup that names a teaser or a fragment an article. Of several marked elements (related
    stories marked up as articles too), only one can hold most of the text, unless they are
    nested: one that holds others is a list of stories or a page wrapper, never taken.
    """
    marked = tree.xpath("//*[@itemprop='articleBody']") or tree.findall(".//article")
    if not marked:
        return tree
    page_text = _paragraph_chars(tree)
    if len(marked) > 1:
        holders = {ancestor for element in marked for ancestor in element.iterancestors()}
        marked = [element for element in marked if element not in holders]
    article = next((element for element in marked if _paragraph_chars(element) > page_text / 2), None) if page_text else None
    if article is None:
        return tree
    page = lxml.html.Element("html")
    lxml.etree.SubElement(page, "body").append(article)
    return page


def _without_boilerplate(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """`tree` without the elements that trafilatura's cleaning deletes with all they hold, in one C call.

    trafilatura deletes them too, but only after it has searched the whole tree for comment
    sections and infinite-scroll containers (XPath with a regular expression called back for each
    element) and copied it three times: on a page extracted whole, about a tenth of its time.
    Not when no paragraph is outside them (nor outside the forms, figures and math it deletes
    at times): trafilatura then keeps them, in recall mode, rather than find no text.
    """
    if any(next(paragraph.iterancestors(*_CLEANED_BY_TRAFILATURA), None) is None for paragraph in tree.iter("p")):
        lxml.etree.strip_elements(tree, *_ALWAYS_CLEANED, with_tail=False)
    return tree


def _paragraph_chars(element: lxml.html.HtmlElement) -> int:
    return sum(len(paragraph.text_content()) for paragraph in element.iter("p"))


def _link_texts(tree: lxml.html.HtmlElement) -> frozenset[str]:
    texts = (_comparable(link.text_content()) for link in tree.iter("a"))
    return frozenset(text for text in texts if len(text) >= _MIN_LINK_TEXT)


def _article_blocks(blocks: list[str], title: str | None, link_texts: frozenset[str]) -> list[str]:
    """The blocks of the article without what recall mode keeps around it.

    Recall mode keeps all of the article and, with it, some of its surroundings: the headline
    (stored as the title, not part of the body), bare URLs, copyright notices, and blocks whose
    text is mostly the text of the page's links: navigation, lists of related stories, "read
    more" teasers, newsletter and app promotions (the link-density rule of boilerplate
    detectors such as boilerpipe and Readability).
    """
    headline = _comparable(title or "")
    texts = [_comparable(block) for block in blocks]
    # Most of the page's links (navigation, teasers) are nowhere in the body: each block is
    # searched only for those that are somewhere in it. "\n" is never in a comparable text, so
    # no link is found across two blocks.
    body = "\n".join(texts)
    in_body = [link for link in link_texts if link in body]
    kept = []
    for index, (block, text) in enumerate(zip(blocks, texts, strict=True)):
        if (not text or (index < _HEADLINE_BLOCKS and text == headline) or _BARE_URL.match(block)
                or _COPYRIGHT.match(block)):
            continue
        linked = sum(len(link) for link in in_body if link in text)
        if linked < _LINK_DENSITY * len(text):
            kept.append(block)
    return kept


def _comparable(text: str) -> str:
    return _NON_WORD.sub(" ", text).strip().lower()


def _metadata(tree: lxml.html.HtmlElement) -> Document:
    """Title, author, site name and description, by trafilatura's public `extract_metadata`.

    It is given only the parts of the page that these come from (the head's <meta> and <title>,
    JSON-LD, h1 and h2 headings), never the whole tree: on the whole page it also looks for
    categories, tags and a licence in the body, and guesses an author from the markup on a pruned
    copy of the tree (slow, and often wrong: "Posted by ...", "... November"), four times the
    cost of the extraction itself. An author here comes from <meta> tags and JSON-LD only. The
    page's own URL stays out too, so that a page naming no site is not given its host name.
    """
    import trafilatura

    return trafilatura.extract_metadata(_metadata_view(tree), date_config=dict(_DATE_PARAMS), extensive=False)


def _metadata_view(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    view = lxml.html.Element("html")
    head = lxml.etree.SubElement(view, "head")
    body = lxml.etree.SubElement(view, "body")
    page_head = tree.find("head")
    if page_head is not None:
        for element in page_head.iterchildren("meta", "title"):
            if (element.get("property") or element.get("name") or "").lower() not in _URL_META:
                head.append(copy.copy(element))
    for element in tree.iter("script", "h1", "h2"):
        if element.tag != "script" or (element.get("type") or "").strip().lower() == "application/ld+json":
            body.append(copy.copy(element))
    return view


def decode_html(html: bytes, encoding: str | None) -> str:
    """The page as text: its BOM, else the HTTP charset `encoding`, else its <meta charset>, else UTF-8
    when the bytes are valid UTF-8, else Windows-1252 (the web's default). Never fails.

    A page that declares nothing and is not UTF-8 is decoded as Windows-1252 rather than by
    charset-normalizer's guess: on the pages of the extraction benchmark re-encoded in legacy
    charsets without a declaration, the guess is right less often (91 of 117 against 109: it takes
    the few accented letters and typographic quotes of a Western page for DOS code pages) and
    costs 50 times the time (bench/detection.py).
    """
    for bom, codec in _BOMS:
        if html.startswith(bom):
            return html.decode(codec, errors="replace")
    candidates = [encoding] if encoding else []
    match = _META_CHARSET.search(html[:4096])
    if match:
        candidates.append(match.group(1).decode("ascii"))
    for candidate in candidates:
        try:
            return html.decode(_web_codec(candidate), errors="replace")
        except LookupError:   # unknown, or not a text codec (rot13, zlib, ...)
            continue
    try:
        return html.decode("utf-8")
    except UnicodeDecodeError:
        return html.decode("cp1252", errors="replace")


def _web_codec(name: str) -> str:
    """The codec a charset label means on the web. Latin-1 and ASCII labels mean Windows-1252 (the
    HTML standard agrees); a UTF-16/32 label on a page without a BOM is wrong in practice."""
    codec = codecs.lookup(name).name
    return _CODEC_FOR_LABEL.get(codec, "utf-8" if codec.startswith(("utf-16", "utf-32")) else codec)


def declared_language(tree: lxml.html.HtmlElement) -> str | None:
    # Candidates in order of trust, each looked up only when those before it say nothing usable.
    candidates = (
        lambda: [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")],
        lambda: tree.xpath("//meta[translate(@http-equiv,'CONTENT-LANGUAGE','content-language')"
                           "='content-language']/@content"),
        lambda: tree.xpath("//meta[@property='og:locale']/@content"),
    )
    for values in candidates:
        for value in values():
            match = _LANG_CODE.match(str(value or "").split(",")[0])
            if match:
                return match.group(1).lower()
    return None


def _canonical_url(tree: lxml.html.HtmlElement, url: str) -> str | None:
    for link in tree.xpath("//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            return absolute_http_url(link.get("href"), url)
    return None


def _published(tree: lxml.html.HtmlElement) -> datetime | None:
    # Meta tags first, then JSON-LD, then <time> and microdata; each looked up only when those
    # before it give no usable timestamp.
    for values in (lambda: _meta_dates(tree), lambda: _json_ld_page_dates(tree), lambda: _element_dates(tree)):
        for value in values():
            parsed = _parse_timestamp(value)
            if parsed is not None:
                return parsed
    return None


def _meta_dates(tree: lxml.html.HtmlElement) -> list[str]:
    metas: dict[str, str] = {}
    for meta in tree.xpath("//meta[@content]"):
        name = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        metas.setdefault(name, meta.get("content"))
    return [metas[name] for name in _PUBLISHED_META if metas.get(name)]


def _json_ld_page_dates(tree: lxml.html.HtmlElement) -> Iterator[str]:
    for script in tree.xpath("//script[@type='application/ld+json']/text()"):
        yield from _json_ld_dates(str(script))


def _element_dates(tree: lxml.html.HtmlElement) -> list[str]:
    return [str(v) for v in tree.xpath("//*[@itemprop='datePublished']/@datetime | //time[@datetime]/@datetime")]


def _json_ld_dates(text: str) -> Iterator[str]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if isinstance(item.get("datePublished"), str):
                yield item["datePublished"]
            if isinstance(item.get("@graph"), list):
                pending.extend(item["@graph"])


def _parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 timestamp with a time of day; a bare date is left to trafilatura's fallback."""
    value = value.strip()
    if len(value) < 16 or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if value[10:11] == " " else value)
    except ValueError:
        return None
    return plausible_published(parsed)


def _day(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return plausible_published(datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC))
    except ValueError:
        return None


def _trafilatura_blocks(body: lxml.etree._Element) -> Iterator[str]:
    """trafilatura's XML body (p, head, list, table, quote, ...) as one text per block.

    Loose text between blocks (`body.text`, a block's tail) is a block of its own.
    """
    if body.text and body.text.strip():
        yield _lines(body.text)
    for block in body:
        if block.tag == "list":
            lines = ["- " + _inline_text(item) for item in block.iter("item")]
        elif block.tag == "table":
            lines = [" | ".join(_inline_text(cell) for cell in row.iter("cell")) for row in block.iter("row")]
        else:
            lines = [_inline_text(block)]
        text = "\n".join(line for line in lines if line.strip("- |"))
        if text:
            yield text
        if block.tail and block.tail.strip():
            yield _lines(block.tail)


def _inline_text(element: lxml.etree._Element) -> str:
    """The text of `element`, whitespace collapsed, a line break for each <lb/> (<br>)."""
    parts: list[str] = []
    _flatten(element, parts)
    return _lines("".join(parts))


def _flatten(node: lxml.etree._Element, parts: list[str]) -> None:
    tag = node.tag if isinstance(node.tag, str) else ""
    if tag in _SKIP_TAGS:
        return
    if tag in ("lb", "br"):
        parts.append(_BREAK)
    parts.append(node.text or "")
    for child in node:
        if isinstance(child.tag, str) and child.tag in _BLOCK_TAGS:
            parts.append(_BREAK * 2)
            _flatten(child, parts)
            parts.append(_BREAK * 2)
        else:
            _flatten(child, parts)
        parts.append(child.tail or "")


def _lines(raw: str) -> str:
    text = _WHITESPACE.sub(" ", raw.translate(_INVISIBLE)).replace(_BREAK, "\n")
    lines = (line.strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _block_texts(root: lxml.html.HtmlElement) -> list[str]:
    """Text of an HTML tree cut into blocks at block-level elements and at double <br>."""
    parts: list[str] = []
    _flatten(root, parts)
    blocks = _BLOCK_BREAK.split("".join(parts))
    return [text for text in (_lines(block) for block in blocks) if text]


def guess_language(body: str) -> str | None:
    """ISO 639-1 code of the text's language (langid.py's model, via py3langid); None if unsure."""
    sample = body[:_LANGUAGE_SAMPLE].strip()
    if len(sample) < _LANGUAGE_MIN_CHARS:
        return None
    lang, probability = _language_identifier().classify(sample)
    return str(lang) if probability >= _LANGUAGE_MIN_PROBABILITY else None


def warm_up() -> None:
    """Load what every extraction needs and would otherwise load on its first page."""
    _language_identifier()


@functools.cache
def _language_identifier() -> LanguageIdentifier:
    # The model ships inside the wheel (no download); loading it takes ~0.2 s, once per process.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
