"""No feed holds a pass hostage (issue 16, item 4).

A feed that suddenly lists thousands of new entries on one host is worked through over several
passes, newest first, `fetch.max_new_entries` at a time: every other feed's articles are stored
in the first pass, without waiting behind the flood's pages; the feed's validators are stored
only once nothing of it is left, so the next request never gets a 304 that would hide the rest;
in the end every entry is stored, each page fetched once.
"""
from __future__ import annotations

import email.utils
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

import pytest
from _httpserver import LocalServer
from sqlalchemy import select
from test_hostile import HTML_TYPE, RSS_TYPE, article_page

from monitor.config import settings_from_dict
from monitor.db import models as m
from monitor.db.store import Store
from monitor.matching import Matcher
from monitor.pipeline import Pipeline

FLOOD = 2000          # entries the flooding feed lists
BOUND = 500           # fetch.max_new_entries in this test
OTHERS = 5            # articles of the well-behaved feed on another host
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _rss(items: list[tuple[str, str, datetime]]) -> bytes:
    """RSS 2.0 with (guid, link, published) items, in the order given."""
    parts = [f"<item><title>{escape(guid)}</title><link>{escape(link)}</link>"
             f"<guid isPermaLink='false'>{escape(guid)}</guid>"
             f"<pubDate>{email.utils.format_datetime(published)}</pubDate></item>"
             for guid, link, published in items]
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Flood</title>"
            f"<link>http://flood.example/</link>{''.join(parts)}</channel></rss>").encode()


class _Web:
    """Two hosts: 127.0.0.1 floods, 127.0.0.2 is an ordinary news site. Page requests of both
    are logged in one sequence, so their order across hosts can be read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pages: list[tuple[str, str]] = []         # (host, path) of every page request, in order
        self.feed_statuses: list[int] = []             # what the flooding feed answered, in order
        self.first_flood_page = threading.Event()
        self.flood = LocalServer(address="127.0.0.1")
        self.site = LocalServer(address="127.0.0.2")
        # Published one minute apart, entry i the i-th oldest; listed in no particular order.
        order = sorted(range(FLOOD), key=lambda i: (i * 7919) % FLOOD)
        items = [(f"f{i}", self.flood.url(f"/f/{i}"), T0 + timedelta(minutes=i)) for i in order]
        self.flood.routes["/flood.xml"] = self._conditional(_rss(items), '"flood-v1"', self.feed_statuses)
        for i in range(FLOOD):
            self.flood.routes[f"/f/{i}"] = self._page("flood", f"/f/{i}", f"Flood item {i}")
        news = [(f"n{i}", self.site.url(f"/n/{i}"), T0 + timedelta(hours=i)) for i in range(OTHERS)]
        # The news feed answers only once the flood's pages are being fetched: its pages then
        # queue behind the flood's, which is what must not delay them.
        self.site.routes["/news.xml"] = self._after_flood_started(self._conditional(_rss(news), '"news-v1"', []))
        for i in range(OTHERS):
            self.site.routes[f"/n/{i}"] = self._page("site", f"/n/{i}", f"Harbour news {i}")

    def feeds(self) -> list[str]:
        return [self.flood.url("/flood.xml"), self.site.url("/news.xml")]

    def close(self) -> None:
        self.flood.close()
        self.site.close()

    def _page(self, host: str, path: str, title: str) -> Any:
        body = article_page(title, f"{title} tells of the harbour, the ships and the tides.")

        def handler(h: BaseHTTPRequestHandler) -> None:
            with self.lock:
                self.pages.append((host, path))
            if host == "flood":
                self.first_flood_page.set()
            _answer(h, 200, HTML_TYPE, body)

        return handler

    def _after_flood_started(self, inner: Any) -> Any:
        def handler(h: BaseHTTPRequestHandler) -> None:
            self.first_flood_page.wait(timeout=30)
            inner(h)

        return handler

    @staticmethod
    def _conditional(body: bytes, etag: str, statuses: list[int]) -> Any:
        def handler(h: BaseHTTPRequestHandler) -> None:
            if h.headers.get("If-None-Match") == etag:
                statuses.append(304)
                _answer(h, 304, {"ETag": etag}, b"")
                return
            statuses.append(200)
            _answer(h, 200, {**RSS_TYPE, "ETag": etag}, body)

        return handler


def _answer(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    if status != 304:
        h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if status != 304:
        h.wfile.write(body)


@pytest.fixture
def web() -> Iterator[_Web]:
    w = _Web()
    try:
        yield w
    finally:
        w.close()


def _stored(store: Store) -> dict[str, set[int]]:
    """The numbers of the stored articles, by site."""
    found: dict[str, set[int]] = {"f": set(), "n": set()}
    with store.engine.connect() as conn:
        for url in conn.scalars(select(m.Article.url)):
            kind, number = url.rsplit("/", 2)[-2:]
            found[kind].add(int(number))
    return found


def test_a_flood_is_worked_through_newest_first_without_holding_up_the_pass(db_url: str, web: _Web) -> None:
    settings = settings_from_dict({"database": {"url": db_url},
                                   "fetch": {"allow_private_addresses": True, "max_new_entries": BOUND},
                                   "extract": {"workers": 1}})
    with Store.open(settings.database_url, create=True) as store, \
            Pipeline(settings, store, Matcher([])) as pipeline:
        store.sync_feeds([(url, None, None) for url in web.feeds()])
        flood_feed = store.get_feed(web.feeds()[0])
        assert flood_feed is not None

        first = pipeline.run_pass(store.list_feeds())
        stored = _stored(store)
        # Every article of the other site is stored in the first pass, and their pages were
        # fetched while the flood's first hundred were: they never waited behind the flood.
        assert stored["n"] == set(range(OTHERS))
        site_positions = [i for i, (host, _path) in enumerate(web.pages) if host == "site"]
        assert len(site_positions) == OTHERS and max(site_positions) < 100, site_positions
        # Of the flood, the newest BOUND entries, and the rest left for later.
        assert stored["f"] == set(range(FLOOD - BOUND, FLOOD))
        assert (first.new_articles, first.entries_deferred) == (BOUND + OTHERS, FLOOD - BOUND)
        assert "1500 new entries left for later passes" in first.line()
        # No validators stored for the flood yet: the next request must get the whole feed.
        assert store.get_feed(flood_feed.url).etag is None

        passes = 1
        while passes < 10:
            summary = pipeline.run_pass(store.list_feeds())
            passes += 1
            stored = _stored(store)
            taken = min(FLOOD, BOUND * passes)
            # Each pass takes the newest of what is left.
            assert stored["f"] == set(range(FLOOD - taken, FLOOD)), passes
            assert summary.new_articles == taken - BOUND * (passes - 1)
            if summary.entries_deferred == 0:
                break
        assert passes == FLOOD // BOUND
        assert store.get_feed(flood_feed.url).etag == '"flood-v1"'   # all of it stored: now validated

        # Every page was fetched once, every article stored once.
        counts = Counter(path for _host, path in web.pages)
        assert len(counts) == FLOOD + OTHERS and set(counts.values()) == {1}
        assert store.count_articles() == FLOOD + OTHERS
        # And the next pass is a 304 that fetches nothing.
        pages_before = len(web.pages)
        last = pipeline.run_pass(store.list_feeds())
        assert web.feed_statuses[-1] == 304 and web.feed_statuses.count(200) == passes
        assert len(web.pages) == pages_before and last.new_articles == 0


def test_newest_first_puts_dated_entries_newest_first_and_keeps_the_feed_order_otherwise() -> None:
    from monitor._types import FeedEntry
    from monitor.pipeline import newest_first

    def entry(key: str, minutes: int | None) -> FeedEntry:
        return FeedEntry(key=key, link=None, published=None if minutes is None else T0 + timedelta(minutes=minutes))

    entries = [entry("u1", None), entry("old", 1), entry("new", 9), entry("u2", None), entry("tie-a", 5),
               entry("tie-b", 5)]
    assert [e.key for e in newest_first(entries)] == ["new", "tie-a", "tie-b", "old", "u1", "u2"]


def test_a_backlog_makes_the_feed_due_at_once_and_is_not_taken_for_its_pace() -> None:
    from monitor.config import ScheduleSettings
    from monitor.schedule import CheckOutcome, PollState, next_check

    poll = PollState(interval=1800.0, activity=0.5, checks=4)
    now = T0
    flooded = next_check(CheckOutcome(ok=True, new_entries=500, backlog=1500), error_count=0, interval=None,
                         settings=ScheduleSettings(), now=now, poll=poll)
    assert flooded.due_at == now and flooded.enabled
    assert (flooded.poll.interval, flooded.poll.activity, flooded.poll.checks) == (1800.0, 0.5, 5)
    ordinary = next_check(CheckOutcome(ok=True, new_entries=500), error_count=0, interval=None,
                          settings=ScheduleSettings(), now=now, poll=poll)
    assert ordinary.due_at >= now + timedelta(seconds=300)
