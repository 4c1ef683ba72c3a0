from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from monitor._types import Article, MatchResult
from monitor.db.migrate import schema_status
from monitor.db.store import ArticleRow, ArticleWrite, FeedResult, Store
from monitor.exceptions import SchemaOutdatedError, StorageError

T0 = datetime(2018, 6, 12, 9, 0, tzinfo=UTC)
FEED = "https://news.example/rss"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url, create=True) as store:
        yield store


def _article(n: int, *, published: datetime | None = T0, fetched_at: datetime = T0, body: str = "Body.") -> Article:
    return Article(
        url=f"https://news.example/a/{n}",
        final_url=f"https://www.news.example/a/{n}?utm=x",
        feed_url=FEED,
        title=f"Article {n}",
        body=body,
        fetched_at=fetched_at,
        published=published,
        author="A. Writer",
        outlet="Example News",
        lang="en",
        summary="A summary.",
        source="page",
        entry_key=f"guid-{n}",
    )


def _store(store: Store, article: Article, results: Sequence[MatchResult] = (), at: datetime = T0, *,
           clear_failure: bool = False) -> tuple[int, bool, int]:
    """Store one article as a pass does: (article id, whether it was added, matches added)."""
    return store.store_articles([ArticleWrite(article, results, [], clear_failure)], at)[0]


def _match(story: str, *, matched: bool = True, score: float = 0.9) -> MatchResult:
    return MatchResult(
        story_id=story,
        matched=matched,
        score=score,
        evidence=("reference similarity 0.62", "title: summit"),
        rule_versions={"reference": "1"},
        best_passage="The summit went ahead.",
    )


# -- opening


def test_open_refuses_an_empty_database_unless_asked_to_create(db_url: str) -> None:
    with pytest.raises(SchemaOutdatedError, match="monitor db upgrade"):
        Store.open(db_url)
    with Store.open(db_url, create=True) as store:
        assert schema_status(store.engine) == "current"
        assert store.dialect_name in ("sqlite", "postgresql")
    with Store.open(db_url) as store:
        assert store.count_articles() == 0


# -- feeds


def test_sync_feeds_adds_only_new_feeds_and_never_deletes(store: Store) -> None:
    assert store.sync_feeds([(FEED, "News", None), ("https://b.example/atom", None, 600)]) == 2
    assert store.sync_feeds([(FEED, "Renamed", 60), ("https://c.example/feed", None, None)]) == 1
    feeds = {feed.url: feed for feed in store.list_feeds()}
    assert set(feeds) == {FEED, "https://b.example/atom", "https://c.example/feed"}
    assert feeds[FEED].title == "News" and feeds[FEED].interval_seconds is None
    assert feeds["https://b.example/atom"].interval_seconds == 600
    assert all(feed.source == "config" and feed.enabled and feed.next_due_at is None for feed in feeds.values())
    assert store.sync_feeds([]) == 0


def test_sync_feeds_in_more_than_one_chunk(store: Store) -> None:
    urls = [f"https://many.example/{n}/rss" for n in range(1203)]
    assert store.sync_feeds([(url, None, None) for url in urls]) == 1203
    assert store.sync_feeds([(url, None, None) for url in urls]) == 0
    assert len(store.list_feeds()) == 1203


def test_add_get_remove_feed(store: Store) -> None:
    added = store.add_feed(FEED, title="News", interval_seconds=900)
    assert (added.url, added.title, added.source, added.interval_seconds) == (FEED, "News", "cli", 900)
    assert added.error_count == 0 and added.etag is None and added.last_fetched_at is None
    again = store.add_feed(FEED, title="Other", source="opml")
    assert again == added
    assert store.get_feed(FEED) == added
    assert store.get_feed("https://nowhere.example/rss") is None
    assert store.remove_feed(FEED) is True
    assert store.remove_feed(FEED) is False
    assert store.list_feeds() == []


def test_removing_a_feed_keeps_its_articles_and_forgets_its_entries(store: Store) -> None:
    feed = store.add_feed(FEED)
    store.record_entries(feed.id, [("guid-1", "https://news.example/a/1")], T0)
    _store(store, _article(1), [_match("summit")])
    assert store.remove_feed(FEED)
    assert store.count_articles() == 1
    assert len(store.matches(None, None, None)) == 1
    readded = store.add_feed(FEED)
    assert store.unseen_entry_keys(readded.id, ["guid-1"]) == {"guid-1"}


def test_due_feeds_is_enabled_and_never_fetched_or_due(store: Store) -> None:
    store.sync_feeds([(f"https://f.example/{n}", None, None) for n in range(5)])
    by_url = {feed.url: feed for feed in store.list_feeds()}

    def schedule(n: int, next_due_at: datetime) -> None:
        store.record_feed_result(FeedResult(
            by_url[f"https://f.example/{n}"].id,
            fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=next_due_at,
        ))

    schedule(0, T0 + timedelta(minutes=5))    # due exactly at now
    schedule(1, T0 + timedelta(minutes=6))    # not yet
    schedule(2, T0 - timedelta(hours=1))      # overdue
    # 3: never fetched (next_due_at null): due
    assert store.set_feed_enabled("https://f.example/4", False) is True   # disabled: never due
    assert store.set_feed_enabled("https://nowhere.example/", False) is False

    now = T0 + timedelta(minutes=5)
    due = [feed.url.rsplit("/", 1)[1] for feed in store.due_feeds(now)]
    assert due == ["3", "2", "0"]
    assert [feed.url for feed in store.due_feeds(now, limit=1)] == ["https://f.example/3"]
    # A due time given in another offset is the same instant.
    assert len(store.due_feeds(now.astimezone(timezone(timedelta(hours=9))))) == 3


def test_record_feed_result_keeps_validators_unless_given(store: Store) -> None:
    feed = store.add_feed(FEED)
    store.record_feed_result(FeedResult(
        feed.id, fetched_at=T0, status="ok", error=None, error_count=0,
        next_due_at=T0 + timedelta(hours=1), etag='"v1"', last_modified="Tue, 12 Jun 2018 09:00:00 GMT",
        title="Example News",
    ))
    store.record_feed_result(FeedResult(
        feed.id, fetched_at=T0 + timedelta(hours=1), status="error", error="HTTP 503", error_count=1,
        next_due_at=T0 + timedelta(hours=3),
    ))
    stored = store.get_feed(FEED)
    assert stored is not None
    assert stored.etag == '"v1"' and stored.last_modified == "Tue, 12 Jun 2018 09:00:00 GMT"
    assert stored.title == "Example News"
    assert (stored.last_status, stored.last_error, stored.error_count) == ("error", "HTTP 503", 1)
    assert stored.last_fetched_at == T0 + timedelta(hours=1)
    assert stored.next_due_at == T0 + timedelta(hours=3)
    assert stored.next_due_at.tzinfo is UTC


def test_record_feed_result_follows_a_permanent_redirect_unless_the_target_is_taken(store: Store) -> None:
    moved = store.add_feed(FEED)
    store.record_feed_result(FeedResult(
        moved.id, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
        new_url="https://news.example/feed.xml",
    ))
    assert store.get_feed(FEED) is None
    assert store.get_feed("https://news.example/feed.xml") is not None

    other = store.add_feed("https://mirror.example/rss")
    store.record_feed_result(FeedResult(
        other.id, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
        new_url="https://news.example/feed.xml",
    ))
    kept = store.get_feed("https://mirror.example/rss")
    assert kept is not None and kept.last_status == "ok"
    assert len(store.list_feeds()) == 2


def test_a_redirect_too_long_to_store_is_refused_aloud_and_the_result_kept(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    feed = store.add_feed(FEED)
    other = store.add_feed("https://b.example/rss")
    too_long = "https://news.example/" + "é" * 1500       # 3,000 bytes: more than an index takes
    with caplog.at_level(logging.WARNING, logger="monitor.db"):
        store.record_feed_results([
            FeedResult(feed.id, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
                       etag='"v2"', new_url=too_long),
            FeedResult(other.id, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
                       new_url="https://b.example/feed.xml"),
        ])
    stayed = store.get_feed(FEED)
    assert stayed is not None and (stayed.last_status, stayed.etag) == ("ok", '"v2"')
    assert store.get_feed("https://b.example/feed.xml") is not None      # the other result still moved
    [refusal] = [r.getMessage() for r in caplog.records if "not moved" in r.getMessage()]
    assert refusal.startswith(FEED) and "3021 bytes, limit 2000" in refusal


# -- entries


def test_entries_are_recorded_once_per_feed(store: Store) -> None:
    one, two = store.add_feed(FEED), store.add_feed("https://b.example/rss")
    assert store.unseen_entry_keys(one.id, ["g1", "g2", "g2"]) == {"g1", "g2"}
    store.record_entries(one.id, [("g1", "https://news.example/a/1"), ("g1", None)], T0)
    store.record_entries(one.id, [("g1", "https://news.example/a/1"), ("g2", None)], T0)
    assert store.unseen_entry_keys(one.id, ["g1", "g2", "g3"]) == {"g3"}
    assert store.unseen_entry_keys(two.id, ["g1"]) == {"g1"}
    assert store.unseen_entry_keys(one.id, []) == set()


def test_hostile_entry_keys_are_stored_and_recognised(store: Store) -> None:
    feed = store.add_feed(FEED)
    keys = ["x" * 10_000, "nul\x00inside", "lone \udc80 surrogate", "ünïcödé-" + "é" * 1500]
    assert store.unseen_entry_keys(feed.id, keys) == set(keys)
    store.record_entries(feed.id, [(key, None) for key in keys], T0)
    assert store.unseen_entry_keys(feed.id, keys + ["new"]) == {"new"}


def test_many_entry_keys_in_chunks(store: Store) -> None:
    feed = store.add_feed(FEED)
    keys = [f"guid-{n}" for n in range(1234)]
    store.record_entries(feed.id, [(key, None) for key in keys[:1100]], T0)
    assert store.unseen_entry_keys(feed.id, keys) == set(keys[1100:])


# -- articles


def test_storing_an_article_is_idempotent_and_round_trips(store: Store) -> None:
    published = datetime(2018, 6, 12, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    article = _article(1, published=published, body="First paragraph.\n\nSecond paragraph.")
    article_id, created, _ = _store(store, article)
    assert created is True
    assert _store(store, replace(article, title="Changed")) == (article_id, False, 0)
    assert store.count_articles() == 1

    [row] = list(store.iter_articles())
    assert row == ArticleRow(
        id=article_id, url=article.url, final_url=article.final_url, feed_url=FEED, title="Article 1",
        author="A. Writer", outlet="Example News", published=published, lang="en", summary="A summary.",
        body="First paragraph.\n\nSecond paragraph.", source="page", fetched_at=T0,
    )
    assert row.published is not None and row.published.tzinfo is UTC and row.published.hour == 10
    assert row.fetched_at.tzinfo is UTC
    assert row.article() == replace(article, published=row.published, entry_key=None)


def test_known_article_urls(store: Store) -> None:
    _store(store, _article(1))
    _store(store, _article(2))
    asked = [f"https://news.example/a/{n}" for n in range(700)]
    assert store.known_article_urls(asked) == {"https://news.example/a/1", "https://news.example/a/2"}
    assert store.known_article_urls([]) == set()


def test_hostile_text_is_stored(store: Store) -> None:
    article = _article(1, body="nul \x00 byte and lone \ud800 surrogate")
    _article_id, created, _ = _store(store, replace(article, title="\x00"))
    assert created
    [row] = list(store.iter_articles())
    assert "\x00" not in row.body and row.body.startswith("nul \ufffd byte")
    assert _store(store, replace(article, title="again"))[1] is False


def test_overlong_article_url_is_refused_on_every_backend(store: Store) -> None:
    with pytest.raises(StorageError, match="article URL too long"):
        _store(store, replace(_article(1), url="https://news.example/" + "a" * 5000))


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StorageError, match="naive datetime"):
        _store(store, _article(1, fetched_at=datetime(2018, 6, 12, 9, 0)))


def test_iter_articles_reads_in_batches_in_order(store: Store) -> None:
    store.store_articles([ArticleWrite(_article(n), [], []) for n in range(7)], T0)
    rows = list(store.iter_articles(batch=3))
    assert [row.url for row in rows] == [f"https://news.example/a/{n}" for n in range(7)]
    assert store.count_articles() == 7


def test_page_failures_count_attempts_until_the_article_is_stored(store: Store) -> None:
    url = "https://news.example/a/9"
    assert store.record_page_failure(url, FEED, "HTTP 500", T0) == 1
    assert store.record_page_failure(url, FEED, "timed out", T0 + timedelta(hours=1)) == 2
    assert store.record_page_failure("https://other.example/x", FEED, "HTTP 404", T0) == 1
    assert store.page_failure_attempts([url, "https://other.example/x", "https://never.example/"]) == {
        url: 2,
        "https://other.example/x": 1,
    }
    _store(store, replace(_article(9), url=url), clear_failure=True)
    assert store.page_failure_attempts([url, "https://other.example/x"]) == {"https://other.example/x": 1}
    assert store.record_page_failure(url, FEED, "HTTP 500", T0) == 1


# -- matches


def test_matches_are_stored_once(store: Store) -> None:
    results = [_match("summit"), _match("other", matched=False, score=0.2), _match("trade")]
    article_id, _, added = _store(store, _article(1), results)
    assert added == 2
    assert _store(store, _article(1), results, T0 + timedelta(days=1)) == (article_id, False, 0)
    assert _store(store, _article(1), [])[2] == 0
    stored = store.matches(None, None, None)
    assert sorted(match.story_id for match in stored) == ["summit", "trade"]
    summit = next(match for match in stored if match.story_id == "summit")
    assert summit.evidence == ("reference similarity 0.62", "title: summit")
    assert summit.score == pytest.approx(0.9)
    assert summit.matched_at == T0 and summit.matched_at.tzinfo is UTC
    assert (summit.url, summit.canonical_url) == ("https://www.news.example/a/1?utm=x", "https://news.example/a/1")
    assert (summit.article_id, summit.feed_url, summit.title, summit.outlet, summit.lang) == (
        article_id, FEED, "Article 1", "Example News", "en",
    )
    assert summit.best_passage == "The summit went ahead." and summit.body == "Body."


def test_matches_window_uses_published_else_first_seen(store: Store) -> None:
    # published inside the window
    both = [_match("summit"), _match("trade")]
    a, _, _ = _store(store, _article(1, published=T0, fetched_at=T0 + timedelta(days=400)), both)
    # no date: filed under when it was first seen
    b, _, _ = _store(store, _article(2, published=None, fetched_at=T0 + timedelta(days=1)), both)
    # published before the window, though seen inside it
    c, _, _ = _store(store, _article(3, published=T0 - timedelta(days=30), fetched_at=T0), both)
    # published exactly at `until`: excluded
    d, _, _ = _store(store, _article(4, published=T0 + timedelta(days=7)), both)

    since, until = T0, T0 + timedelta(days=7)
    window = store.matches(["summit"], since, until)
    assert [match.article_id for match in window] == [a, b]
    assert [match.when for match in window] == [T0, T0 + timedelta(days=1)]
    assert len(store.matches(None, since, until)) == 4
    assert [m.article_id for m in store.matches(["summit"], None, T0)] == [c]
    assert [m.article_id for m in store.matches(["summit"], until, None)] == [d]
    assert store.matches([], None, None) == []
    # The bounds may carry any offset.
    tokyo = timezone(timedelta(hours=9))
    assert len(store.matches(["summit"], since.astimezone(tokyo), until.astimezone(tokyo))) == 2


def test_deleting_an_article_deletes_its_matches(store: Store) -> None:
    # The schema's cascade: relied on by anyone pruning articles by hand.
    article_id, _, _ = _store(store, _article(1), [_match("summit")])
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM articles WHERE id = {article_id}")
    assert store.matches(None, None, None) == []


# -- concurrency


def test_one_store_shared_by_threads(store: Store) -> None:
    errors: list[BaseException] = []
    created: list[bool] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        try:
            for n in range(20):
                # Every worker saves the same 20 articles: each must be created exactly once.
                _article_id, was_created, _ = _store(store, _article(n), [_match(f"story-{worker % 2}")])
                with lock:
                    created.append(was_created)
        except BaseException as e:   # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert created.count(True) == 20
    assert store.count_articles() == 20
    assert len(store.matches(None, None, None)) == 40


def test_tables_and_schema_version_land_in_the_database_under_test(store: Store) -> None:
    inspector = inspect(store.engine)
    if store.dialect_name == "postgresql":
        assert inspector.default_schema_name is not None and inspector.default_schema_name.startswith("t_")
    assert {"feeds", "entries", "articles", "matches", "page_failures", "alembic_version"} <= set(
        inspector.get_table_names()
    )
