"""Writes in batches and the cheaper paths of a pass: many articles or feed results in one
transaction, all or nothing; a pass that fetches pages a bounded way ahead; a batch that cannot be
stored together stored one by one; a matcher built only when needed; a 304 that keeps its connection."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _httpserver import LocalServer
from sqlalchemy import select, text
from test_hostile import HTML_TYPE, RSS_TYPE, article_page, rss

from monitor._types import Article, MatchResult
from monitor.db import models as m
from monitor.db.leases import Release, claim_due_feeds, release_many
from monitor.db.store import ArticleWrite, FeedResult, Store
from monitor.exceptions import StorageError
from monitor.schedule import PollState

T0 = datetime(2018, 6, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url, create=True) as store:
        yield store


def _article(n: int, url: str | None = None) -> Article:
    return Article(url=url or f"https://news.example/a/{n}", final_url=f"https://news.example/a/{n}",
                   feed_url="https://news.example/rss", title=f"Article {n}", body=f"Body {n}.",
                   fetched_at=T0, published=T0, summary="", source="page", entry_key=f"g{n}")


def _matched(story: str) -> MatchResult:
    return MatchResult(story_id=story, matched=True, score=0.9, evidence=("title",), rule_versions={"title": "1"})


# -- the store ---------------------------------------------------------------------------------

def test_store_articles_writes_each_with_its_matches_and_entries(store: Store) -> None:
    store.sync_feeds([("https://news.example/rss", None, None)])
    feed_id = store.list_feeds()[0].id
    store.store_articles([ArticleWrite(_article(0), [], [(feed_id, "g0", "https://news.example/a/0")])], T0)
    writes = [ArticleWrite(_article(n), [_matched("s")] if n % 2 else [], [(feed_id, f"g{n}", f"https://news.example/a/{n}")])
              for n in range(4)]
    outcomes = store.store_articles(writes, T0)
    assert [(created, added) for _id, created, added in outcomes] == [(False, 0), (True, 1), (True, 0), (True, 1)]
    assert outcomes[0][0] == store.store_articles([writes[0]], T0)[0][0]      # the stored one's id
    assert store.count_articles() == 4
    assert store.unseen_entry_keys(feed_id, [f"g{n}" for n in range(5)]) == {"g4"}
    assert sorted(m.article_id for m in store.matches(["s"], None, None)) == sorted([outcomes[1][0], outcomes[3][0]])


def test_store_articles_is_all_or_nothing(store: Store) -> None:
    too_long = "https://news.example/" + "x" * 3000
    with pytest.raises(StorageError, match="too long"):
        store.store_articles([ArticleWrite(_article(1), [], []), ArticleWrite(_article(2, too_long), [], [])], T0)
    assert store.count_articles() == 0


def test_store_articles_forgets_page_failures_of_the_articles_asked(store: Store) -> None:
    for n in (1, 2):
        store.record_page_failure(f"https://news.example/a/{n}", "https://news.example/rss", "timeout", T0)
    store.store_articles([ArticleWrite(_article(1), [], [], clear_failure=True),
                          ArticleWrite(_article(2), [], [], clear_failure=False)], T0)
    assert store.page_failure_attempts([f"https://news.example/a/{n}" for n in (1, 2)]) == {"https://news.example/a/2": 1}


def test_record_feed_results_writes_many_and_keeps_unsent_validators(store: Store) -> None:
    store.sync_feeds([(f"https://f{i}.example/rss", None, None) for i in range(3)])
    feeds = store.list_feeds()
    store.record_feed_result(FeedResult(feeds[0].id, fetched_at=T0, status="ok", error=None, error_count=0,
                                        next_due_at=T0, etag='"v1"', last_modified="Mon, 11 Jun 2018 09:00:00 GMT"))
    later = T0 + timedelta(hours=1)
    ran: list[bool] = []
    store.record_feed_results([
        FeedResult(feeds[0].id, fetched_at=later, status="not-modified", error=None, error_count=0,
                   next_due_at=later + timedelta(minutes=15)),
        FeedResult(feeds[1].id, fetched_at=later, status="ok", error=None, error_count=0,
                   next_due_at=later, etag='"w"', title="Second"),
        FeedResult(feeds[2].id, fetched_at=later, status="error", error="HTTP 500", error_count=3,
                   next_due_at=later, new_url="https://f2.example/moved"),
    ], then=lambda conn: ran.append(conn.scalar(select(m.Feed.last_status).where(m.Feed.id == feeds[1].id)) == "ok"))
    assert ran == [True]          # in the same transaction, after the updates
    after = {f.id: f for f in store.list_feeds()}
    first, second, third = after[feeds[0].id], after[feeds[1].id], after[feeds[2].id]
    assert (first.last_status, first.etag, first.last_modified) == ("not-modified", '"v1"', "Mon, 11 Jun 2018 09:00:00 GMT")
    assert first.next_due_at == later + timedelta(minutes=15)
    assert (second.etag, second.title) == ('"w"', "Second")
    assert (third.last_error, third.error_count, third.url) == ("HTTP 500", 3, "https://f2.example/moved")


def test_sync_feeds_adds_only_the_new_ones(store: Store) -> None:
    assert store.sync_feeds([(f"https://f{i}.example/rss", None, None) for i in range(3)]) == 3
    assert store.sync_feeds([(f"https://f{i}.example/rss", None, None) for i in range(5)] * 2) == 2
    assert len(store.list_feeds()) == store.count_feeds() == 5


def test_write_poll_states_skips_removed_feeds_and_replaces_existing_states(store: Store) -> None:
    store.sync_feeds([("https://a.example/rss", None, None), ("https://b.example/rss", None, None)])
    a, b = store.list_feeds()
    store.remove_feed(b.url)
    with store.engine.begin() as conn:
        store.write_poll_states(conn, [(a.id, PollState(checks=1), T0), (b.id, PollState(checks=1), T0)])
    with store.engine.begin() as conn:
        store.write_poll_states(conn, [(a.id, PollState(checks=2, activity=0.5), T0)])
    assert store.load_poll_states([a.id, b.id]) == {a.id: PollState(checks=2, activity=0.5)}


def test_poll_states_are_read_a_chunk_ahead_and_each_check_gets_its_own(store: Store,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass reads its feeds' poll states a chunk at a time as their checks start, not all at its
    start; each check still gets its own feed's stored state: in order, out of it, asked twice, or
    none stored."""
    from monitor.pipeline import _PollStatesAhead

    store.sync_feeds([(f"https://f{i}.example/rss", None, None) for i in range(7)])
    feeds = store.list_feeds()
    with store.engine.begin() as conn:
        store.write_poll_states(conn, [(f.id, PollState(checks=i + 1), T0) for i, f in enumerate(feeds[:6])])
    monkeypatch.setattr(_PollStatesAhead, "CHUNK", 3)
    polls = _PollStatesAhead(store, feeds)
    assert polls.take(feeds[0]) == PollState(checks=1)
    assert polls._read == 3
    assert polls.take(feeds[4]) == PollState(checks=5)     # out of order: read on its own
    assert polls._read == 3
    assert polls.take(feeds[1]) == PollState(checks=2)
    assert polls.take(feeds[1]) == PollState(checks=2)
    assert [polls.take(f) for f in (feeds[2], feeds[3], feeds[5], feeds[6])] == \
        [PollState(checks=3), PollState(checks=4), PollState(checks=6), PollState()]


def test_release_many_tells_then_which_claims_were_held(db_url: str) -> None:
    with Store.open(db_url, create=True) as store:
        store.sync_feeds([("https://a.example/rss", None, None), ("https://b.example/rss", None, None)])
        claims = claim_due_feeds(store, "me", T0, 10, 300)
        with store.engine.begin() as conn:     # the second lease was taken over meanwhile
            conn.execute(text("UPDATE feeds SET lease_token = lease_token + 1 WHERE id = :id"), {"id": claims[1].feed.id})
        told: list[list[bool]] = []
        held = release_many(store, [Release(c) for c in claims], then=lambda conn, ok: told.append(ok))
        assert held == [True, False] and told == [[True, False]]


def test_one_unstorable_feed_result_costs_the_others_of_its_batch_nothing(store: Store) -> None:
    from monitor.pipeline.decide import FeedDecision
    from monitor.pipeline.leases import Leases

    store.sync_feeds([("https://a.example/rss", None, None), ("https://b.example/rss", None, None)])
    a, b = store.list_feeds()
    leases = Leases(store, (), 300)
    recorded: list[str] = []
    naive = datetime(2018, 6, 12, 9, 0)         # a time without its zone: the database refuses it
    leases.record(FeedDecision(a, FeedResult(a.id, fetched_at=naive, status="ok", error=None, error_count=0,
                                             next_due_at=T0), "ok"),
                  then=lambda: recorded.append("a"))
    leases.record(FeedDecision(b, FeedResult(b.id, fetched_at=T0, status="ok", error=None, error_count=0,
                                             next_due_at=T0, etag='"b"'), "ok", poll=PollState(checks=1)),
                  then=lambda: recorded.append("b"))
    leases.flush()
    after = {f.id: f for f in store.list_feeds()}
    assert recorded == ["b"] and leases.pending == []
    assert (after[b.id].last_status, after[b.id].etag) == ("ok", '"b"')
    assert after[a.id].last_status is None and after[a.id].url == "https://a.example/rss"
    assert store.load_poll_states([a.id, b.id]) == {b.id: PollState(checks=1)}


# -- a pass ------------------------------------------------------------------------------------

def _site(server: LocalServer, pages: int, *, long_url_at: int | None = None) -> list[str]:
    items = []
    for i in range(pages):
        path = f"/p/{i}" + ("/" + "x" * 2100 if i == long_url_at else "")
        server.routes[path] = (200, HTML_TYPE, article_page(f"Page {i}", f"Page {i} is about the harbour."))
        items.append({"title": f"Page {i}", "guid": f"g{i}", "link": server.url(path)})
    server.routes["/feed.xml"] = (200, RSS_TYPE, rss(items))
    return [server.url("/feed.xml")]


def _pass(db_url: str, feeds: list[str], **sections: dict[str, Any]) -> tuple[Any, Store]:
    from monitor.config import settings_from_dict
    from monitor.matching import Matcher
    from monitor.pipeline import Pipeline

    settings = settings_from_dict({"database": {"url": db_url},
                                   "fetch": {"allow_private_addresses": True, "page_retries": 1},
                                   "extract": {"workers": 1}, **sections})
    store = Store.open(settings.database_url, create=True)
    store.sync_feeds([(url, None, None) for url in feeds])
    with Pipeline(settings, store, Matcher([])) as pipeline:
        summary = pipeline.run_pass(store.list_feeds())
    return summary, store


def test_a_pass_that_may_fetch_one_page_ahead_still_stores_every_article(sqlite_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.pipeline import passes

    monkeypatch.setattr(passes, "PAGES_AHEAD", 1)
    with LocalServer() as server:
        summary, store = _pass(sqlite_url, _site(server, 12))
        with store:
            titles = sorted(a.title for a in store.iter_articles())
            feed = store.list_feeds()[0]
        assert server.max_concurrent == 1              # never a second page while one is in flight
    assert summary.new_articles == 12 and titles == sorted(f"Page {i}" for i in range(12))
    assert feed.last_status == "ok"


def test_an_article_that_cannot_be_stored_costs_the_others_of_its_batch_nothing(sqlite_url: str) -> None:
    with LocalServer() as server:
        summary, store = _pass(sqlite_url, _site(server, 6, long_url_at=3))
        with store:
            titles = sorted(a.title for a in store.iter_articles())
            feed = store.list_feeds()[0]
    assert titles == sorted(f"Page {i}" for i in range(6) if i != 3)
    assert summary.new_articles == 5
    # the article that failed is retried on the next pass: the feed keeps no validators
    assert feed.etag is None


def test_the_matcher_is_built_only_when_an_article_needs_it(sqlite_url: str) -> None:
    from monitor.db.story_models import CurrentMatcher
    from monitor.matching import load_stories
    from monitor.runtime import LazyMatcher

    built: list[int] = []
    lazy = LazyMatcher(lambda: built.append(1) or _Counting())
    assert lazy.rule_errors == 0 and built == []
    assert lazy.match("article") == ["article"] and lazy.rule_errors == 7 and built == [1]
    assert lazy.stories == [] and built == [1]               # built once

    with Store.open(sqlite_url, create=True) as store:
        matcher = LazyMatcher(CurrentMatcher(store, load_stories([{"id": "trump-kim-summit-2018"}])))
        assert isinstance(matcher, LazyMatcher) and matcher._matcher is None
        assert [s.id for s in matcher.stories] == ["trump-kim-summit-2018"]


class _Counting:
    rule_errors = 7
    stories: list[Any] = []

    def match(self, article: Any) -> list[Any]:
        return [article]


# -- fetching ----------------------------------------------------------------------------------

def test_a_304_gives_its_connection_back_for_the_next_request(tmp_path: Path) -> None:
    from monitor.fetch import Fetcher, FetchPolicy

    ports: list[int] = []

    def not_modified(h: Any) -> None:
        ports.append(h.client_address[1])
        h.send_response(304)
        h.send_header("ETag", '"v1"')
        h.end_headers()

    with LocalServer({"/feed.xml": not_modified}) as server, \
            Fetcher(FetchPolicy(allow_private_addresses=True), max_connections=1, per_host=1) as fetcher:
        for _ in range(3):
            assert fetcher.fetch(server.url("/feed.xml"), etag='"v1"').not_modified
    assert len(ports) == 3 and len(set(ports)) == 1


def test_proxy_settings_of_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.fetch import Fetcher, FetchPolicy

    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")      # nothing listens there
    with LocalServer({"/page": (200, HTML_TYPE, b"<p>hello</p>")}) as server, \
            Fetcher(FetchPolicy(allow_private_addresses=True)) as fetcher:
        assert fetcher.fetch(server.url("/page")).body == b"<p>hello</p>"
    assert server.paths() == ["/page"]
