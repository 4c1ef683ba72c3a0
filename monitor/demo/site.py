"""A small offline news web: render article dicts as outlets with feeds and pages, and serve them.

`monitor demo` uses it to give a new user something real to poll without touching the internet;
the tests use it to exercise fetching, parsing and extraction against real bytes over real HTTP.

Every outlet (one `feed` slug) becomes a folder with a home page, a feed and one page per article:

    <out>/<feed>/index.html            outlet home page, announcing the feed with <link rel="alternate">
    <out>/<feed>/feed.xml              RSS 2.0, Atom 1.0, or RSS 2.0 with the full text in content:encoded
    <out>/<feed><path>/index.html      the article, wrapped in navigation, a "most read" box and a footer

Article text is hostile input like any other: everything is escaped for the context it lands in,
and `feed` and `path` are checked before they become file names. Output depends only on the
arguments, so two renders of the same articles are byte-identical.
"""
from __future__ import annotations

import email.utils
import functools
import hashlib
import html
import json
import re
import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from xml.sax.saxutils import escape as _xml_escape

FeedFormat = Literal["rss2", "atom", "rss2-full"]

ARTICLE_FIELDS = ("id", "outlet", "feed", "path", "title", "author", "published", "summary", "body", "lang", "dup_of")
BUNDLED_ARTICLES = Path(__file__).with_name("articles.jsonl")

# Outlets get formats in turn (by sorted feed slug), so any site of three or more outlets has all three.
_FORMAT_CYCLE: tuple[FeedFormat, ...] = ("rss2", "atom", "rss2-full")
_SECTIONS = ("World", "Politics", "Business", "Sport", "Culture", "Opinion")
_MOST_READ = 5
_FEED_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
# Characters XML 1.0 forbids even as references; a hostile title must not make the feed ill-formed.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The base URL is written into markup unescaped, so it may only hold characters that need no escaping.
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.\[\]:-]+(/[A-Za-z0-9._~/-]*)?")


def load_articles(path: Path | None = None) -> list[dict[str, Any]]:
    """Read article dicts from a JSON-lines file (default: the bundled demo articles), oldest first."""
    source = path or BUNDLED_ARTICLES
    articles = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}:{number}: not a JSON object: {e}") from e
        if not isinstance(row, dict):
            raise ValueError(f"{source}:{number}: not a JSON object")
        missing = [name for name in ARTICLE_FIELDS if not isinstance(row.get(name), str)]
        if missing:
            raise ValueError(f"{source}:{number}: article {row.get('id')!r} lacks text fields {missing}")
        articles.append(row)
    articles.sort(key=lambda a: (_published(a), a["id"]))
    return articles


def article_url(base_url: str, article: Mapping[str, str]) -> str:
    """The absolute address of an article's page (with the trailing slash the server would redirect to)."""
    return f"{base_url.rstrip('/')}/{article['feed']}{article['path'].rstrip('/')}/"


def feed_url(base_url: str, feed: str) -> str:
    return f"{base_url.rstrip('/')}/{feed}/feed.xml"


def render_site(
    articles: list[dict[str, Any]],
    out_dir: Path,
    base_url: str,
    *,
    feed_formats: Mapping[str, FeedFormat] | None = None,
) -> list[str]:
    """Write every outlet's home page, feed and article pages under `out_dir`; return the feed URLs.

    `base_url` is where `out_dir` will be served (links are absolute). `feed_formats` picks the
    format of some feeds by slug; the others take formats in turn.
    """
    if not _BASE_URL.fullmatch(base_url):
        raise ValueError(f"base URL {base_url!r} is not a plain http(s) address")
    base = base_url.rstrip("/")
    by_feed: dict[str, list[dict[str, Any]]] = {}
    for article in articles:
        _check_location(article)
        by_feed.setdefault(article["feed"], []).append(article)
    chosen = feed_formats or {}
    urls = []
    for index, (feed, items) in enumerate(sorted(by_feed.items())):
        newest_first = sorted(items, key=lambda a: (_published(a), a["id"]), reverse=True)
        feed_format = chosen.get(feed, _FORMAT_CYCLE[index % len(_FORMAT_CYCLE)])
        folder = out_dir / feed
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "feed.xml").write_bytes(_render_feed(base, feed, newest_first, feed_format))
        _write_text(folder / "index.html", _render_home(base, feed, newest_first))
        for article in items:
            page_dir = folder.joinpath(*article["path"].strip("/").split("/"))
            page_dir.mkdir(parents=True, exist_ok=True)
            _write_text(page_dir / "index.html", _render_page(base, article, _most_read(articles, article)))
        urls.append(feed_url(base, feed))
    return urls


class LocalSite:
    """Serves a folder over HTTP on 127.0.0.1 at a free port, from a daemon thread, without logging.

    The socket is bound on construction, so `base_url` is known before anything is rendered;
    requests made before `start()` wait in the listen queue.
    """

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self.root = root
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.base_url} is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name=f"LocalSite {self.base_url}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def build_and_serve(
    tmp_dir: Path,
    articles: list[dict[str, Any]] | None = None,
    *,
    feed_formats: Mapping[str, FeedFormat] | None = None,
) -> tuple[LocalSite, list[str]]:
    """Render `articles` (default: the bundled ones) under `tmp_dir` and serve them; the caller closes the site."""
    root = tmp_dir / "site"
    root.mkdir(parents=True, exist_ok=True)
    site = LocalSite(root)
    try:
        urls = render_site(load_articles() if articles is None else articles, root, site.base_url, feed_formats=feed_formats)
        site.start()
    except BaseException:
        site.close()
        raise
    return site, urls


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".xml": "application/xml", ".html": "text/html; charset=utf-8"}

    def log_message(self, format: str, *args: object) -> None:
        """No access log: the demo's output is the digest, and test output stays readable."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-response is normal (size caps, deadlines); anything else is a bug worth seeing.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _check_location(article: Mapping[str, str]) -> None:
    """`feed` and `path` become file names: refuse anything that could leave the output folder."""
    if not _FEED_SLUG.fullmatch(article["feed"]):
        raise ValueError(f"article {article['id']!r}: feed slug {article['feed']!r} is not lower-case letters, digits and '-'")
    path = article["path"]
    segments = path.strip("/").split("/")
    if not path.startswith("/") or not all(_PATH_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ValueError(f"article {article['id']!r}: path {path!r} is not '/'-separated plain segments")


def _published(article: Mapping[str, str]) -> datetime:
    try:
        when = datetime.fromisoformat(article["published"])
    except ValueError as e:
        raise ValueError(f"article {article['id']!r}: published {article['published']!r} is not ISO 8601") from e
    if when.tzinfo is None:
        raise ValueError(f"article {article['id']!r}: published {article['published']!r} has no time zone")
    return when


def _paragraphs(body: str) -> list[str]:
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def _most_read(articles: list[dict[str, Any]], article: Mapping[str, str]) -> list[dict[str, Any]]:
    """Other articles for the sidebar, in an order that looks arbitrary but never changes."""
    def rank(other: Mapping[str, str]) -> str:
        return hashlib.sha256(f"{article['id']}|{other['id']}".encode()).hexdigest()

    return sorted((a for a in articles if a["id"] != article["id"]), key=rank)[:_MOST_READ]


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _x(text: str) -> str:
    return _xml_escape(_NOT_XML_CHAR.sub("", text), {'"': "&quot;"})


def _human_date(when: datetime) -> str:
    return f"{when.day} {when:%B %Y, %H:%M}"


def _json_for_script(value: object) -> str:
    # Inside <script> only "</" can end the element; escaping <, > and & rules out any surprise.
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _header(base: str, feed: str, outlet: str) -> str:
    nav = "".join(f'<li><a href="{base}/{feed}/{s.lower()}/">{s}</a></li>' for s in _SECTIONS)
    return (f'<header class="site-header"><a class="masthead" href="{base}/{feed}/">{_h(outlet)}</a>'
            f'<nav aria-label="Sections"><ul>{nav}</ul></nav>'
            f'<form class="search" action="{base}/{feed}/search"><input type="search" name="q" placeholder="Search">'
            f"</form></header>\n")


def _footer(base: str, feed: str, outlet: str) -> str:
    links = "".join(f'<li><a href="{base}/{feed}/{slug}/">{label}</a></li>'
                    for slug, label in (("about", "About us"), ("contact", "Contact"), ("privacy", "Privacy policy"), ("terms", "Terms of use")))
    return (f'<footer class="site-footer"><ul>{links}</ul>'
            f'<p>&copy; 2018 {_h(outlet)}. All rights reserved. <a href="{feed_url(base, feed)}">RSS</a></p></footer>\n')


def _render_page(base: str, article: Mapping[str, str], most_read: list[dict[str, Any]]) -> str:
    feed, outlet, title = article["feed"], article["outlet"], article["title"]
    url = article_url(base, article)
    when = _published(article)
    author = article["author"]
    metadata = {
        "@context": "https://schema.org", "@type": "NewsArticle", "headline": title, "url": url,
        "datePublished": when.isoformat(), "inLanguage": article["lang"], "description": article["summary"],
        "author": [{"@type": "Person", "name": author}] if author else [],
        "publisher": {"@type": "Organization", "name": outlet},
    }
    byline = f'<p class="byline">By <a rel="author" href="{base}/{feed}/authors/">{_h(author)}</a></p>' if author else ""
    paragraphs = "".join(f"<p>{_h(p)}</p>\n" for p in _paragraphs(article["body"]))
    sidebar = "".join(f'<li><a href="{article_url(base, other)}">{_h(other["title"])}</a></li>' for other in most_read)
    return (
        f'<!DOCTYPE html>\n<html lang="{_h(article["lang"])}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)} | {_h(outlet)}</title>\n"
        f'<meta name="description" content="{_h(article["summary"])}">\n'
        f'<meta name="author" content="{_h(author)}">\n'
        f'<link rel="canonical" href="{_h(url)}">\n'
        f'<meta property="og:type" content="article">\n<meta property="og:title" content="{_h(title)}">\n'
        f'<meta property="og:site_name" content="{_h(outlet)}">\n<meta property="og:url" content="{_h(url)}">\n'
        f'<meta property="article:published_time" content="{when.isoformat()}">\n'
        f'<link rel="alternate" type="application/rss+xml" title="{_h(outlet)}" href="{feed_url(base, feed)}">\n'
        f'<script type="application/ld+json">{_json_for_script(metadata)}</script>\n'
        f"</head>\n<body>\n"
        f'<div class="cookie-notice">We use cookies to understand how our journalism is read. <button>OK</button></div>\n'
        f"{_header(base, feed, outlet)}"
        f'<main class="layout">\n<article class="story">\n<h1 class="headline">{_h(title)}</h1>\n{byline}\n'
        f'<time datetime="{when.isoformat()}">{_human_date(when)}</time>\n'
        f'<div class="story-body">\n{paragraphs}</div>\n</article>\n'
        f'<aside class="most-read"><h2>Most read</h2><ol>{sidebar}</ol></aside>\n'
        f'<aside class="newsletter"><h2>The morning briefing</h2><p>The day\'s essential news from {_h(outlet)}, '
        f'before breakfast.</p><input type="email" placeholder="Email address"><button>Sign up</button></aside>\n'
        f"</main>\n{_footer(base, feed, outlet)}</body>\n</html>\n"
    )


def _render_home(base: str, feed: str, newest_first: list[dict[str, Any]]) -> str:
    outlet = newest_first[0]["outlet"]
    teasers = "".join(
        f'<li><a href="{article_url(base, a)}">{_h(a["title"])}</a><p>{_h(a["summary"])}</p></li>\n' for a in newest_first)
    return (
        f'<!DOCTYPE html>\n<html lang="{_h(newest_first[0]["lang"])}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_h(outlet)}</title>\n"
        f'<link rel="alternate" type="application/rss+xml" title="{_h(outlet)}" href="{feed_url(base, feed)}">\n'
        f"</head>\n<body>\n{_header(base, feed, outlet)}"
        f'<main><h1>Latest news</h1><ul class="teasers">\n{teasers}</ul></main>\n{_footer(base, feed, outlet)}</body>\n</html>\n'
    )


def _render_feed(base: str, feed: str, newest_first: list[dict[str, Any]], feed_format: FeedFormat) -> bytes:
    if feed_format == "atom":
        return _render_atom(base, feed, newest_first)
    return _render_rss(base, feed, newest_first, full_text=feed_format == "rss2-full")


def _render_rss(base: str, feed: str, newest_first: list[dict[str, Any]], full_text: bool) -> bytes:
    outlet = newest_first[0]["outlet"]
    items = []
    for article in newest_first:
        url = article_url(base, article)
        # A full-text feed tends to come from a CMS with opaque ids; the others use the permalink.
        guid = (f'<guid isPermaLink="false">{_x(feed)}-{_x(article["id"])}</guid>' if full_text
                else f'<guid isPermaLink="true">{_x(url)}</guid>')
        author = f"<dc:creator>{_x(article['author'])}</dc:creator>" if article["author"] else ""
        content = ""
        if full_text:
            body_html = "".join(f"<p>{_h(p)}</p>" for p in _paragraphs(article["body"]))
            content = f"<content:encoded>{_x(body_html)}</content:encoded>"
        items.append(
            f"<item><title>{_x(article['title'])}</title><link>{_x(url)}</link>{guid}{author}"
            f"<pubDate>{email.utils.format_datetime(_published(article))}</pubDate>"
            f"<description>{_x(article['summary'])}</description>{content}</item>\n")
    last_build = email.utils.format_datetime(_published(newest_first[0]))
    document = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>{_x(outlet)}</title><link>{base}/{feed}/</link><description>Latest news from {_x(outlet)}</description>\n"
        f'<atom:link rel="self" type="application/rss+xml" href="{feed_url(base, feed)}"/>\n'
        f"<language>{_x(newest_first[0]['lang'])}</language><lastBuildDate>{last_build}</lastBuildDate><ttl>30</ttl>\n"
        f"{''.join(items)}</channel>\n</rss>\n"
    )
    return document.encode("utf-8")


def _render_atom(base: str, feed: str, newest_first: list[dict[str, Any]]) -> bytes:
    outlet = newest_first[0]["outlet"]
    entries = []
    for article in newest_first:
        when = _published(article).isoformat()
        author = f"<author><name>{_x(article['author'])}</name></author>" if article["author"] else ""
        entries.append(
            f"<entry><title>{_x(article['title'])}</title>"
            f'<link rel="alternate" type="text/html" href="{_x(article_url(base, article))}"/>'
            f"<id>urn:{_x(feed)}:article:{_x(article['id'])}</id><published>{when}</published><updated>{when}</updated>"
            f"{author}<summary>{_x(article['summary'])}</summary></entry>\n")
    document = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{_x(newest_first[0]["lang"])}">\n'
        f"<title>{_x(outlet)}</title><subtitle>Latest news from {_x(outlet)}</subtitle>\n"
        f'<link rel="self" type="application/atom+xml" href="{feed_url(base, feed)}"/><link rel="alternate" href="{base}/{feed}/"/>\n'
        f"<id>urn:{_x(feed)}:feed</id><updated>{_published(newest_first[0]).isoformat()}</updated>\n"
        f"{''.join(entries)}</feed>\n"
    )
    return document.encode("utf-8")
