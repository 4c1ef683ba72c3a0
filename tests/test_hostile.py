"""The hostile web: a real server on 127.0.0.1 that attacks the monitor in every way we know,
next to a well-behaved news site, and one real `monitor run --once` process over both.

Each attack or fault is a feed (or an article page named by a feed) of `HostileSite`; the
tests assert what the monitor stored and what it recorded for that feed (`feeds list` state,
last error), and that a pass over hostile and good feeds together stores every good article.
docs/security.md lists each attack with the test that shows it.
"""
from __future__ import annotations

import gzip
import html
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import brotli
import pytest
from _httpserver import LocalServer, delayed, never_answer, slow_body
from sitegen import make_article, serve_articles

ROOT = Path(__file__).resolve().parent.parent
CAP = 256 * 1024                 # fetch.max_feed_bytes and fetch.max_page_bytes of the hostile pass
TOTAL_TIMEOUT = 3                # fetch.total_timeout of the hostile pass, seconds
SECRET = "root:x:0:0"            # what /etc/passwd starts with: must never be stored


# --- the hostile site ------------------------------------------------------------------------

def article_page(title: str, lead: str) -> bytes:
    """A plain, well-formed article page with enough text for extraction to find it."""
    paragraphs = [lead] + [f"{lead} Paragraph {i} adds detail about the talks, the envoys and the "
                           f"letters exchanged between the two governments before the meeting." for i in range(1, 5)]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><nav><a href='/'>Home</a></nav><article><h1>{html.escape(title)}</h1>{body}</article>"
            f"<footer>Hostile Herald</footer></body></html>").encode()


def rss(items: list[dict[str, str]], *, title: str = "Hostile Herald", prolog: str = "", ttl: str = "") -> bytes:
    """An RSS 2.0 document; item keys: title, link, guid, description, content (all optional)."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item['title'])}</title>" if "title" in item else "",
                  f"<link>{escape(item['link'])}</link>" if "link" in item else "",
                  f"<guid isPermaLink='false'>{escape(item['guid'])}</guid>" if "guid" in item else "",
                  f"<description>{escape(item['description'])}</description>" if "description" in item else "",
                  f"<content:encoded>{escape(item['content'])}</content:encoded>" if "content" in item else ""]
        parts.append(f"<item>{''.join(fields)}</item>")
    return (f"<?xml version='1.0' encoding='utf-8'?>{prolog}"
            f"<rss version='2.0' xmlns:content='http://purl.org/rss/1.0/modules/content/'><channel>"
            f"<title>{escape(title)}</title><link>http://hostile.example/</link>{ttl}"
            f"{''.join(parts)}</channel></rss>").encode()


RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}


@dataclass
class Attack:
    """One hostile feed: its path on the hostile server and what the monitor must make of it."""

    path: str
    status: str                        # the feed's recorded state after the first pass
    error: str | None = None           # a fragment of its recorded last error (None: no error)
    stored: tuple[str, ...] = ()       # titles of the articles it must leave stored, nothing else
    routes: dict[str, Any] = field(default_factory=dict)


class HostileSite:
    """Every attack of the suite on one LocalServer; `attacks[name].path` is the feed to subscribe to.

    `cap` is the monitor's size cap (fetch.max_feed_bytes and max_page_bytes) the attacks aim at.
    """

    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.server = LocalServer()
        self.attacks: dict[str, Attack] = {}
        self._build()
        for attack in self.attacks.values():
            self.server.routes.update(attack.routes)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def feed_urls(self) -> list[str]:
        return [self.url(a.path) for a in self.attacks.values()]

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> HostileSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, name: str, attack: Attack) -> None:
        self.attacks[name] = attack

    def _page(self, path: str, title: str) -> dict[str, Any]:
        """A route serving a good article page, and the feed item that names it."""
        return {path: (200, HTML_TYPE, article_page(title, f"{title}. The envoys met again on Tuesday."))}

    def _item(self, path: str, title: str, **extra: str) -> dict[str, str]:
        return {"title": title, "link": self.url(path), "guid": path, "description": f"Summary of {title}.", **extra}

    def _build(self) -> None:
        u, server, cap = self.url, self.server, self.cap
        bomb = b"\0" * (40 * cap)                     # 40 times the cap, in zeros: compresses to a few kB
        self.add("gzip-bomb", Attack("/bomb.gz.xml", "error", f"decoded body exceeds the cap of {cap} bytes",
                                     routes={"/bomb.gz.xml": (200, {**RSS_TYPE, "Content-Encoding": "gzip"}, gzip.compress(bomb))}))
        self.add("deflate-bomb", Attack("/bomb.deflate.xml", "error", f"decoded body exceeds the cap of {cap} bytes",
                                        routes={"/bomb.deflate.xml": (200, {**RSS_TYPE, "Content-Encoding": "deflate"}, zlib.compress(bomb, 9))}))
        self.add("brotli-bomb", Attack("/bomb.br.xml", "error", f"decoded body exceeds the cap of {cap} bytes",
                                       routes={"/bomb.br.xml": (200, {**RSS_TYPE, "Content-Encoding": "br"}, brotli.compress(bomb, quality=5))}))
        self.add("endless-body", Attack("/endless.xml", "error", f"body exceeds the cap of {cap} bytes",
                                        routes={"/endless.xml": slow_body(server, chunk=b"<item>" * 8192, interval=0, headers=RSS_TYPE)}))
        self.add("slow-drip", Attack("/drip.xml", "error", f"not finished within {TOTAL_TIMEOUT} s",
                                     routes={"/drip.xml": slow_body(server, chunk=b" ", interval=1.0, headers=RSS_TYPE)}))
        self.add("never-answers", Attack("/silent.xml", "error", "timed out",
                                         routes={"/silent.xml": never_answer(server)}))
        self.add("redirect-loop", Attack("/loop-a.xml", "error", "redirect loop", routes={
            "/loop-a.xml": (302, {"Location": "/loop-b.xml"}, b""),
            "/loop-b.xml": (302, {"Location": "/loop-a.xml"}, b"")}))
        hops = {f"/hop{i}.xml": (302, {"Location": f"/hop{i + 1}.xml"}, b"") for i in range(8)}
        self.add("too-many-redirects", Attack("/hop0.xml", "error", "more than 5 redirects", routes=hops))
        self.add("redirect-to-file", Attack("/to-file.xml", "error", "only http and https URLs are fetched",
                                            routes={"/to-file.xml": (302, {"Location": "file:///etc/passwd"}, b"")}))
        # Ten levels of ten: a 3 kB document that expands to 10^9 "lol"s.
        levels = ["<!ENTITY lol 'lol'>"] + [f"<!ENTITY lol{i} '{('&lol' + (str(i - 1) if i > 1 else '') + ';') * 10}'>"
                                             for i in range(1, 10)]
        self.add("billion-laughs", Attack("/laughs.xml", "error", "declares entities", routes={
            "/laughs.xml": (200, RSS_TYPE, rss([{"title": "&lol9;", "link": u("/p/laughs")}],
                                               prolog=f"<!DOCTYPE rss [{''.join(levels)}]>").replace(b"&amp;lol9;", b"&lol9;"))}))
        xxe = "<!DOCTYPE rss [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
        self.add("xxe", Attack("/xxe.xml", "error", "declares entities", routes={
            "/xxe.xml": (200, RSS_TYPE, rss([{"title": "Leak &xxe;", "link": u("/p/xxe"), "description": "&xxe;"}],
                                             prolog=xxe).replace(b"&amp;xxe;", b"&xxe;"))}))
        # A document cut off in the middle of its third item: the two whole items are kept.
        whole = [self._item("/p/trunc-1", "Truncated feed first"), self._item("/p/trunc-2", "Truncated feed second")]
        full = rss(whole + [self._item("/p/trunc-3", "Truncated feed third")])
        cut = full[:full.index(b"Truncated feed third") - 20]
        self.add("truncated-xml", Attack("/truncated.xml", "ok", None,
                                         ("Truncated feed first", "Truncated feed second"),
                                         routes={"/truncated.xml": (200, RSS_TYPE, cut),
                                                 **self._page("/p/trunc-1", "Truncated feed first"),
                                                 **self._page("/p/trunc-2", "Truncated feed second"),
                                                 **self._page("/p/trunc-3", "Truncated feed third")}))
        # Declared UTF-8, written in Windows-1252: the title must still be readable.
        wrong = rss([self._item("/p/charset", "Charset talks")]).replace(b"Charset talks", "Café talks".encode("cp1252"))
        self.add("wrong-charset", Attack("/charset.xml", "ok", None, ("Café talks",), routes={
            "/charset.xml": (200, RSS_TYPE, wrong), **self._page("/p/charset", "Charset page")}))
        dup = [self._item("/p/dup-a", "Duplicate first"), {**self._item("/p/dup-a", "Duplicate again"), "guid": "/p/dup-a"},
               {**self._item("/p/dup-a", "Same link, other id"), "guid": "other-id"}]
        self.add("duplicate-ids", Attack("/dups.xml", "ok", None, ("Duplicate first",), routes={
            "/dups.xml": (200, RSS_TYPE, rss(dup)), **self._page("/p/dup-a", "Duplicate page")}))
        nolinks = [{"title": "No link at all", "guid": "nolink-1", "description": "Said without a link."},
                   {"title": "No link, full text", "guid": "nolink-2", "content": "<p>Full text, no link.</p>"}]
        self.add("entries-without-links", Attack("/nolinks.xml", "ok", routes={"/nolinks.xml": (200, RSS_TYPE, rss(nolinks))}))
        bad_links = [{"title": "Script link", "guid": "js", "link": "javascript:alert(document.cookie)"},
                     {"title": "Data link", "guid": "data", "link": "data:text/html,<script>alert(1)</script>"},
                     {"title": "File link", "guid": "file", "link": "file:///etc/passwd"},
                     {"title": "Vbscript link", "guid": "vb", "link": "vbscript:msgbox(1)"}]
        self.add("javascript-links", Attack("/jslinks.xml", "ok", routes={"/jslinks.xml": (200, RSS_TYPE, rss(bad_links))}))
        homepage = (b"<!doctype html><html><head><title>Hostile Herald home</title>"
                    b"<link rel='alternate' type='application/rss+xml' href='/real-feed.xml'>"
                    b"<link rel='alternate' type='application/atom+xml' href='javascript:alert(1)'>"
                    b"</head><body><p>Welcome</p></body></html>")
        self.add("html-instead-of-feed", Attack("/home.html", "error",
                                                f"this is an HTML page, not a feed - it names these feeds: {u('/real-feed.xml')}",
                                                routes={"/home.html": (200, HTML_TYPE, homepage)}))
        self.add("huge-page", Attack("/huge-page.xml", "ok", routes={
            "/huge-page.xml": (200, RSS_TYPE, rss([self._item("/p/huge", "Huge page")])),
            "/p/huge": (200, HTML_TYPE, b"<html><body><p>" + b"huge " * (cap // 2) + b"</p></body></html>")}))
        self.add("binary-page", Attack("/pdf-page.xml", "ok", None, ("PDF page",), routes={
            "/pdf-page.xml": (200, RSS_TYPE, rss([self._item("/p/report.pdf", "PDF page")])),
            "/p/report.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 64)}))
        for status in (404, 410, 500):
            self.add(f"http-{status}", Attack(f"/status-{status}.xml", "error", f"HTTP {status}",
                                              routes={f"/status-{status}.xml": (status, {"Content-Type": "text/plain"}, b"no")}))
        self.add("429-retry-after", Attack("/busy.xml", "error", "HTTP 429", routes={
            "/busy.xml": (429, {"Retry-After": "7200", "Content-Type": "text/plain"}, b"slow down")}))
        self.add("301-moved", Attack("/old-home.xml", "ok", None, ("Moved feed article",), routes={
            "/old-home.xml": (301, {"Location": "/new-home.xml"}, b""),
            "/new-home.xml": (200, RSS_TYPE, rss([self._item("/p/moved", "Moved feed article")])),
            **self._page("/p/moved", "Moved page")}))
        self.add("304-not-modified", Attack("/etag.xml", "ok", None, ("Validated article",), routes={
            "/etag.xml": _conditional(rss([self._item("/p/etag", "Validated article")]), '"v1"'),
            **self._page("/p/etag", "Validated page")}))
        garbage = random.Random(4).randbytes(20_000)
        self.add("garbage-bytes", Attack("/garbage.xml", "error", "not", routes={"/garbage.xml": (200, RSS_TYPE, garbage)}))


def _conditional(body: bytes, etag: str):
    """A feed that answers 304 to a request carrying its current ETag."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        h.send_response(200)
        for name, value in {**RSS_TYPE, "ETag": etag, "Content-Length": str(len(body))}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    return handler


ATTACKS = ["gzip-bomb", "deflate-bomb", "brotli-bomb", "endless-body", "slow-drip", "never-answers",
           "redirect-loop", "too-many-redirects", "redirect-to-file", "billion-laughs", "xxe", "truncated-xml",
           "wrong-charset", "duplicate-ids", "entries-without-links", "javascript-links", "html-instead-of-feed",
           "huge-page", "binary-page", "http-404", "http-410", "http-500", "429-retry-after", "301-moved",
           "304-not-modified", "garbage-bytes"]
MOVED_TO = {"301-moved": "/new-home.xml"}     # attacks whose stored feed URL changes


# --- one real `monitor run --once` over hostile and good feeds, twice --------------------------

GOOD = [make_article(f"good-{i}", feed=feed, title=f"Good article {i} on the summit talks")
        for i, feed in enumerate(["wire-a", "wire-a", "wire-b", "wire-b", "wire-c", "wire-c"])]


def write_config(path: Path, db_url: str, feeds: list[str], **fetch: Any) -> Path:
    """config.example.toml (stories included) with the database, feeds and fetch settings replaced."""
    import tomllib

    from test_cli_e2e import dump_toml

    cfg = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    cfg["database"]["url"] = db_url
    cfg["fetch"].update({"allow_private_addresses": True, **fetch})
    cfg["feeds"] = [{"url": u} for u in feeds]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_toml(cfg), encoding="utf-8")
    return path


def run_monitor(config: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), *args], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=config.parent)
    assert "Traceback" not in p.stderr, p.stderr[-5000:]
    assert p.returncode == 0, p.stderr[-5000:]
    return p


@dataclass
class Snapshot:
    """The database after a pass, and what the hostile server saw during it."""

    stderr: str
    feeds: dict[str, Any]                        # URL -> FeedState
    articles: list[Any]                          # ArticleRow
    entries: list[tuple[str, str, str | None]]   # (feed URL, entry key, article URL)
    page_failures: dict[str, tuple[int, str]]    # URL -> (attempts, error)
    requests: list[Any]                          # RecordedRequest of the hostile server

    def titles(self, feed_url: str | None = None) -> list[str]:
        return sorted(a.title for a in self.articles if feed_url is None or a.feed_url == feed_url)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def snapshot(db: Path, stderr: str, site: HostileSite, since: int) -> Snapshot:
    from monitor.db.store import Store

    with Store.open(f"sqlite:///{db}") as store:
        feeds = {f.url: f for f in store.list_feeds()}
        articles = list(store.iter_articles())
    with sqlite3.connect(db) as conn:
        entries = conn.execute("SELECT f.url, e.entry_key, e.article_url FROM entries e JOIN feeds f ON f.id = e.feed_id").fetchall()
        failures = {u: (n, e) for u, n, e in conn.execute("SELECT url, attempts, error FROM page_failures")}
    with site.server._lock:
        requests = list(site.server.requests[since:])
    return Snapshot(stderr, feeds, articles, entries, failures, requests)


@dataclass
class HostilePass:
    site: HostileSite
    good_feeds: list[str]
    config: Path
    db: Path
    first: Snapshot
    second: Snapshot
    listing: str                     # `monitor feeds list` after the first pass

    def url(self, name: str) -> str:
        return self.site.url(self.site.attacks[name].path)

    def feed(self, name: str, snap: Snapshot | None = None) -> Any:
        snap = snap or self.first
        return snap.feeds[self.site.url(MOVED_TO.get(name, self.site.attacks[name].path))]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostilePass]:
    tmp = tmp_path_factory.mktemp("hostile")
    with HostileSite() as site, serve_articles(tmp / "good", GOOD) as (_good_site, good_feeds):
        db = tmp / "monitor.db"
        config = write_config(tmp / "conf" / "monitor.toml", f"sqlite:///{db}", [*site.feed_urls(), *good_feeds],
                              total_timeout=TOTAL_TIMEOUT, read_timeout=2, connect_timeout=2, max_feed_bytes=CAP,
                              max_page_bytes=CAP, per_host=16, concurrency=32)
        first = run_monitor(config, "run", "--once")
        snap1 = snapshot(db, first.stderr, site, 0)
        listing = run_monitor(config, "feeds", "list").stdout
        mark = len(site.server.requests)
        second = run_monitor(config, "run", "--once")
        snap2 = snapshot(db, second.stderr, site, mark)
        yield HostilePass(site, good_feeds, config, db, snap1, snap2, listing)


def test_the_suite_has_every_attack() -> None:
    with HostileSite() as site:
        assert sorted(site.attacks) == sorted(ATTACKS) and len(ATTACKS) >= 20


@pytest.mark.parametrize("name", ATTACKS)
def test_feed_attack(hostile: HostilePass, name: str) -> None:
    """Each attack: the state and last error recorded for its feed, and exactly what it left stored."""
    attack = hostile.site.attacks[name]
    feed = hostile.feed(name)
    assert feed.last_status == attack.status, feed.last_error
    if attack.error is None:
        assert feed.last_error is None and feed.error_count == 0
    else:
        # one line that names the feed and says what happened
        assert feed.last_error.startswith(hostile.url(name)) and "\n" not in feed.last_error
        assert attack.error in feed.last_error
        assert feed.error_count == 1
    assert hostile.first.titles(hostile.url(name)) == sorted(attack.stored)


def test_every_good_article_is_stored_once_next_to_the_attacks(hostile: HostilePass) -> None:
    good_titles = sorted(a["title"] for a in GOOD)
    stored = hostile.first.titles()
    assert [t for t in stored if t.startswith("Good article")] == good_titles
    expected = good_titles + sorted(t for a in hostile.site.attacks.values() for t in a.stored)
    assert stored == sorted(expected)
    assert len({a.url for a in hostile.first.articles}) == len(hostile.first.articles)
    for url in hostile.good_feeds:
        assert hostile.first.feeds[url].last_status == "ok" and hostile.first.feeds[url].last_error is None
    good = [a for a in hostile.first.articles if a.title.startswith("Good article")]
    assert all(a.source == "page" and "The first paragraph of article good-" in a.body for a in good)
    assert "pass done" in hostile.first.stderr
    assert f"feeds {len(hostile.good_feeds) + sum(a.status == 'ok' for a in hostile.site.attacks.values())} ok" \
        in hostile.first.stderr


def test_a_second_pass_adds_nothing(hostile: HostilePass) -> None:
    assert "0 new articles" in hostile.second.stderr and "0 new matches" in hostile.second.stderr
    assert [a.url for a in hostile.second.articles] == [a.url for a in hostile.first.articles]


def test_nothing_of_the_local_file_system_is_stored(hostile: HostilePass) -> None:
    with sqlite3.connect(hostile.db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = json.dumps([conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables], default=str)
    assert SECRET not in dump and "/bin/bash" not in dump
    assert "lollol" not in dump
    # the entity-declaring feeds were refused before anything in them was followed
    assert "/p/xxe" not in hostile.first.paths() and "/p/laughs" not in hostile.first.paths()


def test_compression_bombs_and_endless_bodies_stop_at_the_cap(hostile: HostilePass) -> None:
    for name in ("gzip-bomb", "deflate-bomb", "brotli-bomb", "endless-body"):
        assert f"exceeds the cap of {CAP} bytes" in hostile.feed(name).last_error


def test_slow_and_silent_servers_are_cut_off(hostile: HostilePass) -> None:
    assert hostile.feed("slow-drip").last_error.endswith(f"not finished within {TOTAL_TIMEOUT} s")
    assert hostile.feed("never-answers").last_error.endswith("timed out (ReadTimeout)")


def test_redirects_are_bounded_and_http_only(hostile: HostilePass) -> None:
    paths = hostile.first.paths()
    assert paths.count("/loop-a.xml") == 1 and paths.count("/loop-b.xml") == 1
    assert [p for p in paths if p.startswith("/hop")] == [f"/hop{i}.xml" for i in range(6)]
    assert paths.count("/to-file.xml") == 1


def test_entries_without_a_usable_link_are_recorded_not_fetched(hostile: HostilePass) -> None:
    for name, keys in (("entries-without-links", {"nolink-1", "nolink-2"}),
                       ("javascript-links", {"js", "data", "file", "vb"})):
        recorded = {(key, url) for feed, key, url in hostile.first.entries if feed == hostile.url(name)}
        assert recorded == {(key, None) for key in keys}
    # only the two feeds themselves were requested
    assert all(p in ("/nolinks.xml", "/jslinks.xml") for p in hostile.first.paths()
               if "link" in p or "script" in p or "passwd" in p)


def test_duplicate_entries_are_one_article(hostile: HostilePass) -> None:
    page = hostile.site.url("/p/dup-a")
    recorded = sorted((key, url) for feed, key, url in hostile.first.entries if feed == hostile.url("duplicate-ids"))
    assert recorded == [("/p/dup-a", page), ("other-id", page)]
    assert hostile.first.paths().count("/p/dup-a") == 1


def test_truncated_feed_keeps_its_whole_entries(hostile: HostilePass) -> None:
    assert "/p/trunc-3" not in hostile.first.paths()
    stored = {a.title: a for a in hostile.first.articles}
    assert stored["Truncated feed first"].source == "page"


def test_wrong_declared_charset_is_read_as_written(hostile: HostilePass) -> None:
    (article,) = [a for a in hostile.first.articles if a.feed_url == hostile.url("wrong-charset")]
    assert article.title == "Café talks" and "\ufffd" not in article.title


def test_html_page_given_as_a_feed_names_its_feed(hostile: HostilePass) -> None:
    error = hostile.feed("html-instead-of-feed").last_error
    assert error.endswith(f"it names these feeds: {hostile.site.url('/real-feed.xml')}")
    assert "javascript" not in error
    assert "/real-feed.xml" not in hostile.first.paths()        # said, not followed


def test_huge_page_is_recorded_and_retried_on_later_passes(hostile: HostilePass) -> None:
    url = hostile.site.url("/p/huge")
    attempts, error = hostile.first.page_failures[url]
    assert attempts == 1 and f"exceeds the cap of {CAP} bytes" in error
    assert hostile.second.page_failures[url][0] == 2
    assert "Huge page" not in hostile.second.titles()


def test_binary_page_is_skipped_recorded_and_its_entry_kept_from_the_feed(hostile: HostilePass) -> None:
    url = hostile.site.url("/p/report.pdf")
    assert hostile.first.page_failures[url] == (1, "not an HTML page (application/pdf)")
    (article,) = [a for a in hostile.first.articles if a.url == url]
    assert (article.source, article.body) == ("summary", "Summary of PDF page.")


def test_http_errors_back_off(hostile: HostilePass) -> None:
    for name in ("http-404", "http-500"):
        first, second = hostile.feed(name), hostile.feed(name, hostile.second)
        assert (first.error_count, second.error_count) == (1, 2)
        assert second.next_due_at - second.last_fetched_at > first.next_due_at - first.last_fetched_at


def test_429_retry_after_postpones_the_next_check(hostile: HostilePass) -> None:
    feed = hostile.feed("429-retry-after")
    assert feed.next_due_at - feed.last_fetched_at >= timedelta(seconds=7200)


def test_410_gone_disables_the_feed_until_enabled_again(hostile: HostilePass) -> None:
    assert not hostile.feed("http-410").enabled
    assert "/status-410.xml" not in hostile.second.paths()


def test_301_updates_the_stored_feed_url(hostile: HostilePass) -> None:
    assert hostile.url("301-moved") not in hostile.first.feeds
    assert hostile.site.url("/new-home.xml") in hostile.first.feeds
    second = hostile.second.paths()
    assert "/new-home.xml" in second and "/old-home.xml" not in second


def test_304_costs_nothing(hostile: HostilePass) -> None:
    feed = hostile.feed("304-not-modified", hostile.second)
    assert feed.last_status == "not-modified" and feed.etag == '"v1"'
    requests = [r for r in hostile.second.requests if r.path in ("/etag.xml", "/p/etag")]
    assert [(r.path, r.headers.get("if-none-match")) for r in requests] == [("/etag.xml", '"v1"')]


def listed(listing: str, url: str) -> str:
    """The lines `feeds list` prints for the feed `url`."""
    lines = listing.splitlines()
    start = lines.index(url) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def test_feeds_list_shows_state_last_error_and_polling(hostile: HostilePass) -> None:
    for name in ("redirect-loop", "http-410", "gzip-bomb"):
        block = listed(hostile.listing, hostile.url(name))
        assert f": error, 1 error in a row - {hostile.feed(name).last_error}" in block
    assert "DISABLED" in listed(hostile.listing, hostile.url("http-410"))
    ok = listed(hostile.listing, hostile.url("duplicate-ids"))
    assert ": ok\n" in ok and ok.endswith("checked every 15m (adaptive, pace not measured yet)")


def test_feeds_enable_re_enables_a_gone_feed(hostile: HostilePass) -> None:
    out = run_monitor(hostile.config, "feeds", "enable", hostile.url("http-410")).stdout
    assert out.strip() == f"enabled {hostile.url('http-410')}"
    assert "DISABLED" not in listed(run_monitor(hostile.config, "feeds", "list").stdout, hostile.url("http-410"))


def test_a_moved_feed_still_named_by_the_configuration_is_not_fetched_again(hostile: HostilePass) -> None:
    ghost = hostile.second.feeds[hostile.url("301-moved")]       # the configuration added it back
    assert not ghost.enabled and ghost.last_status == "moved"
    assert ghost.last_error == (f"{hostile.url('301-moved')}: moved permanently to {hostile.site.url('/new-home.xml')}, "
                                "which is checked instead; update the configuration")
    assert hostile.second.titles(hostile.site.url("/new-home.xml")) == []     # nothing stored twice


# --- in-process passes: private addresses, forbidden hops, pathological pages -----------------

def run_pass(db_url: str, feeds: list[str], **sections: dict[str, Any]) -> tuple[Any, Any]:
    """One Pipeline pass over `feeds` into a fresh database; returns (summary, store)."""
    from monitor.config import settings_from_dict
    from monitor.db.store import Store
    from monitor.matching import Matcher
    from monitor.pipeline import Pipeline

    fetch = {"allow_private_addresses": True, "total_timeout": TOTAL_TIMEOUT, "read_timeout": 2,
             "connect_timeout": 2, **sections.pop("fetch", {})}
    settings = settings_from_dict({"database": {"url": db_url}, "fetch": fetch, **sections})
    store = Store.open(settings.database_url, create=True)
    store.sync_feeds([(url, None, None) for url in feeds])
    with Pipeline(settings, store, Matcher([])) as pipeline:
        summary = pipeline.run_pass(store.list_feeds())
    return summary, store


def test_private_addresses_are_refused_and_no_request_leaves(sqlite_url: str) -> None:
    with LocalServer({"/feed.xml": (200, RSS_TYPE, rss([]))}) as server:
        spellings = {"127.0.0.1": "loopback", "localhost": "loopback", "127.1": "loopback",
                     "2130706433": "loopback", "0x7f000001": "loopback", "[::ffff:127.0.0.1]": "loopback",
                     "0.0.0.0": "unspecified", "[::1]": "loopback"}
        feeds = {server.url("/feed.xml", host=host): reason for host, reason in spellings.items()}
        summary, store = run_pass(sqlite_url, list(feeds), fetch={"allow_private_addresses": False})
        with store:
            stored = {f.url: f for f in store.list_feeds()}
        assert server.requests == []                        # nothing left the machine for them
    assert summary.feeds_failed == len(feeds)
    for url, reason in feeds.items():
        assert stored[url].last_status == "blocked"
        assert stored[url].last_error.startswith(f"{url}: refused: ") and f"which is {reason}" in stored[url].last_error


def test_a_redirect_or_link_to_a_forbidden_address_is_refused_at_that_hop(sqlite_url: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No public server exists offline, so 127.0.0.1 plays one: the guard is told it is public.
    Every other address keeps its real verdict - 127.0.0.2 is loopback and must be refused."""
    import ipaddress

    from monitor import netguard

    real = netguard.forbidden_reason
    monkeypatch.setattr(netguard, "forbidden_reason",
                        lambda ip: None if ip == ipaddress.ip_address("127.0.0.1") else real(ip))
    with LocalServer() as server:
        internal = server.url("/internal-feed.xml", host="127.0.0.2")
        secret = server.url("/p/secret", host="127.0.0.2")
        server.routes.update({
            "/public-feed.xml": (302, {"Location": internal}, b""),
            "/links.xml": (200, RSS_TYPE, rss([{"title": "Internal page", "guid": "s", "link": secret,
                                                "description": "An internal page."}]))})
        summary, store = run_pass(sqlite_url, [server.url("/public-feed.xml"), server.url("/links.xml")],
                                  fetch={"allow_private_addresses": False, "page_retries": 1})
        with store:
            stored = {f.url: f for f in store.list_feeds()}
            articles = list(store.iter_articles())
        assert sorted(server.paths()) == ["/links.xml", "/public-feed.xml"]     # never the internal hops
    feed = stored[server.url("/public-feed.xml")]
    assert feed.last_status == "blocked"
    assert feed.last_error == (f"{server.url('/public-feed.xml')}: redirect to {internal}: refused: "
                               "127.0.0.2: resolves to 127.0.0.2, which is loopback")
    # the entry is kept from the feed's own summary, and its page was never requested
    assert [(a.title, a.source, a.body) for a in articles] == [("Internal page", "summary", "An internal page.")]
    assert summary.pages_failed == 1


def test_a_pathological_page_is_abandoned_and_its_article_kept_from_the_feed(sqlite_url: str) -> None:
    """One worker, a page that takes far longer to extract than extract.timeout allows, and two
    ordinary pages queued behind it: the slow one is given up, the others are extracted."""
    tables = b"<html><body><table>" + b"<tr><td>a</td><td>b b b b</td></tr>" * 60_000 + b"</table></body></html>"
    with LocalServer() as server:
        items = [{"title": "Pathological page", "guid": "slow", "link": server.url("/p/slow"),
                  "description": "Short.", "content": "<p>The full text the feed carries.</p>"}]
        routes: dict[str, Any] = {"/feed.xml": None, "/p/slow": (200, HTML_TYPE, tables)}
        for i in (1, 2):
            items.append({"title": f"Ordinary page {i}", "guid": f"ok{i}", "link": server.url(f"/p/ok{i}")})
            # a little late, so that they queue behind the pathological page for the one worker
            routes[f"/p/ok{i}"] = delayed(0.5, 200, HTML_TYPE, article_page(f"Ordinary page {i}", f"Ordinary page {i} text."))
        routes["/feed.xml"] = (200, RSS_TYPE, rss(items))
        server.routes.update(routes)
        summary, store = run_pass(sqlite_url, [server.url("/feed.xml")], extract={"workers": 1, "timeout": 2},
                                  fetch={"max_page_bytes": 4 * 1024 * 1024})
        with store:
            articles = {a.title: a for a in store.iter_articles()}
    assert summary.extractions_abandoned == 1 and "1 extraction abandoned" in summary.line()
    assert (articles["Pathological page"].source, articles["Pathological page"].body) == \
        ("feed-content", "The full text the feed carries.")
    for i in (1, 2):
        assert articles[f"Ordinary page {i}"].source == "page"
        assert f"Ordinary page {i} text." in articles[f"Ordinary page {i}"].body


def test_a_stuck_page_of_one_pass_costs_a_pass_running_beside_it_nothing(sqlite_url: str) -> None:
    """Two passes at once on one pipeline, sharing its one extraction worker: the first's page is
    stuck, and the pool is replaced under the second's page, queued behind it. That page was no
    fault of its own: it is extracted again in the new pool, and keeps its page text."""
    from monitor.config import settings_from_dict
    from monitor.db.store import Store
    from monitor.matching import Matcher
    from monitor.pipeline import Pipeline

    tables = b"<html><body><table>" + b"<tr><td>a</td><td>b b b b</td></tr>" * 60_000 + b"</table></body></html>"
    with LocalServer() as server:
        server.routes.update({
            "/stuck.xml": (200, RSS_TYPE, rss([{"title": "Pathological page", "guid": "slow", "link": server.url("/p/slow"),
                                                "content": "<p>The full text the feed carries.</p>"}])),
            "/p/slow": (200, HTML_TYPE, tables),
            "/beside.xml": (200, RSS_TYPE, rss([{"title": "Ordinary page", "guid": "ok", "link": server.url("/p/ok")}])),
            # a little late, so that it queues behind the pathological page for the one worker
            "/p/ok": delayed(0.5, 200, HTML_TYPE, article_page("Ordinary page", "Ordinary page text."))})
        settings = settings_from_dict({"database": {"url": sqlite_url}, "extract": {"workers": 1, "timeout": 2},
                                       "fetch": {"allow_private_addresses": True, "max_page_bytes": 4 * 1024 * 1024}})
        with Store.open(settings.database_url, create=True) as store, \
                Pipeline(settings, store, Matcher([])) as pipeline:
            store.sync_feeds([(server.url("/stuck.xml"), None, None), (server.url("/beside.xml"), None, None)])
            stuck, beside = store.list_feeds()
            summaries: dict[str, Any] = {}
            passes = [threading.Thread(target=lambda n=name, f=feed: summaries.update({n: pipeline.run_pass([f])}))
                      for name, feed in (("stuck", stuck), ("beside", beside))]
            for thread in passes:
                thread.start()
            for thread in passes:
                thread.join(timeout=120)
            articles = {a.title: a for a in store.iter_articles()}
    assert (summaries["stuck"].extractions_abandoned, summaries["beside"].extractions_abandoned) == (1, 0)
    assert articles["Pathological page"].source == "feed-content"
    assert articles["Ordinary page"].source == "page" and "Ordinary page text." in articles["Ordinary page"].body


def _cpu_ticks(pid: int) -> int:
    """The CPU time `pid` has used so far, in clock ticks (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def test_an_extraction_worker_that_dies_loses_nothing(sqlite_url: str) -> None:
    """An extraction worker killed mid-page (the OOM killer, an operator): the page is extracted
    again by a new worker, the pass goes on, and every article keeps its page text."""
    import signal as signals

    from monitor.config import settings_from_dict
    from monitor.db.store import Store
    from monitor.matching import Matcher
    from monitor.pipeline import Pipeline

    slow = (b"<html><body><article><h1>Slow but sound</h1><p>" + b"Slow but sound text. " * 40 + b"</p><table>"
            + b"<tr><td>a</td><td>b b b b</td></tr>" * 8_000 + b"</table></article></body></html>")
    with LocalServer() as server:
        server.routes.update({
            "/feed.xml": (200, RSS_TYPE, rss([{"title": "Slow but sound", "guid": "s", "link": server.url("/p/slow")},
                                              {"title": "Ordinary page", "guid": "o", "link": server.url("/p/ok")}])),
            "/p/slow": (200, HTML_TYPE, slow),
            "/p/ok": delayed(0.3, 200, HTML_TYPE, article_page("Ordinary page", "Ordinary page text."))})
        settings = settings_from_dict({"database": {"url": sqlite_url}, "extract": {"workers": 1},
                                       "fetch": {"allow_private_addresses": True}})
        killed: list[int] = []
        with Store.open(settings.database_url, create=True) as store, \
                Pipeline(settings, store, Matcher([])) as pipeline:
            store.sync_feeds([(server.url("/feed.xml"), None, None)])

            def kill_the_worker() -> None:
                deadline = time.monotonic() + 30
                idle: int | None = None
                while not killed and time.monotonic() < deadline:
                    workers = pipeline.extraction.processes()
                    if workers and "/p/slow" in server.paths():
                        pid = workers[0].pid
                        if idle is None:
                            idle = _cpu_ticks(pid)
                        elif _cpu_ticks(pid) - idle >= 5:    # busy on the slow page: killed mid-extraction
                            os.kill(pid, signals.SIGKILL)
                            killed.append(pid)
                    time.sleep(0.02)

            killer = threading.Thread(target=kill_the_worker)
            killer.start()
            summary = pipeline.run_pass(store.list_feeds())
            killer.join()
            articles = {a.title: a for a in store.iter_articles()}
    assert killed and summary.new_articles == 2 and summary.extractions_abandoned == 0
    assert articles["Slow but sound"].source == "page" and "Slow but sound text." in articles["Slow but sound"].body
    assert articles["Ordinary page"].source == "page"


# --- hostile text in every HTML the monitor writes ---------------------------------------------

HOSTILE_TEXT = 'Kim <script>alert(1)</script> "quoted" \'single\' <img src=x onerror=alert(2)>'
HOSTILE_EVIDENCE = ('title: <script>alert(3)</script>, "summit"',)
HOSTILE_LINK = 'https://news.example/a"onmouseover="alert(4)'


class _Page(HTMLParser):
    """The elements and the text of a page, as a browser would read them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def _hostile_pages() -> dict[str, str]:
    from datetime import UTC, datetime

    from monitor._types import StoredMatch
    from monitor.alerts.message import batch_of, email_message
    from monitor.report import StoryInfo, build_digest, render
    from monitor.server_pages import index_page

    when = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    stored = StoredMatch(story_id="s", score=0.9, evidence=HOSTILE_EVIDENCE, matched_at=when, article_id=1,
                         url=HOSTILE_LINK, canonical_url=HOSTILE_LINK, feed_url="https://feeds.example/rss",
                         title=HOSTILE_TEXT, outlet=HOSTILE_TEXT, published=when, fetched_at=when, lang="en",
                         body=f"{HOSTILE_TEXT} The summit went ahead.", best_passage=None)
    digest = build_digest([StoryInfo("s", HOSTILE_TEXT, description=HOSTILE_TEXT)], [stored], since=None,
                          until=None, generated_at=when)
    email = email_message(batch_of("a", "s", HOSTILE_TEXT, [stored]), "monitor@example.org", ["desk@example.org"])
    story = type("Story", (), {"id": 's"<x>', "title": HOSTILE_TEXT, "enabled": True})()
    return {"digest": render(digest, "html"), "alert e-mail": email.get_body(("html",)).get_content(),
            "front page": index_page([(story, 1)])}


@pytest.mark.parametrize("name", ["digest", "alert e-mail", "front page"])
def test_every_html_output_shows_hostile_titles_and_evidence_as_text(name: str) -> None:
    page = _hostile_pages()[name]
    parsed = _Page(page)
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert {tag for tag, _ in parsed.tags}.isdisjoint({"script", "img", "iframe"})
    for tag, attrs in parsed.tags:
        assert not any(attr.startswith("on") for attr in attrs), (tag, attrs)
    assert HOSTILE_TEXT in parsed.text                       # shown whole, quotes and all, as text
    if name != "front page":
        assert HOSTILE_EVIDENCE[0] in parsed.text
        assert [attrs["href"] for tag, attrs in parsed.tags if tag == "a"] == [HOSTILE_LINK]   # the quote stayed inside
