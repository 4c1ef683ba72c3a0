"""Retention (issue 16, item 6): old unmatched articles lose their text, then go; matched ones
are kept whole with their evidence; nothing pruned is ever fetched again."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _httpserver import LocalServer
from sqlalchemy import func, select
from test_cli_e2e import make_config, monitor
from test_hostile import HTML_TYPE, RSS_TYPE, article_page, rss

from monitor._types import Article, MatchResult
from monitor.config import RetentionSettings, settings_from_dict
from monitor.db import models as m
from monitor.db.leases import advisory_lock
from monitor.db.retention import PruneCounts, Pruner, prune
from monitor.db.store import ArticleWrite, Store

PAGES = 12
ZEBRA = {i for i in range(PAGES) if i % 4 == 0}       # the articles the story matches
STORY = {"id": "zebra-watch", "title": "Zebra sightings", "threshold": 0.5, "bias": -3.0,
         "rules": [{"name": "query", "required": True, "weight": 6.0, "params": {"query": "zebra"}}]}
POLICY = RetentionSettings(drop_bodies_after=30 * 86400.0, drop_unmatched_after=90 * 86400.0, batch_size=2)


def _lead(i: int) -> str:
    animal = "zebra" if i in ZEBRA else "heron"
    return f"Article {i} reports a {animal} seen by the harbour at dawn."


def _serve(server: LocalServer, *, also: list[str] = ()) -> None:
    """Feed /a.xml lists the PAGES articles (and `also`); no validators, so every pass gets it whole."""
    items = [{"title": f"Article {i}", "guid": f"a-{i}", "link": server.url(f"/p/{i}")} for i in range(PAGES)]
    items += [{"title": f"Article {name}", "guid": f"a-{name}", "link": server.url(f"/p/{name}")} for name in also]
    server.routes["/a.xml"] = (200, RSS_TYPE, rss(items))
    for i in range(PAGES):
        server.routes[f"/p/{i}"] = (200, HTML_TYPE, article_page(f"Article {i}", _lead(i)))


def _pass(store: Store, settings_db: str) -> None:
    from monitor.matching import Matcher, load_stories
    from monitor.pipeline import Pipeline

    settings = settings_from_dict({"database": {"url": settings_db}, "fetch": {"allow_private_addresses": True},
                                   "extract": {"workers": 1}})
    with Pipeline(settings, store, Matcher(load_stories([STORY]))) as pipeline:
        pipeline.run_pass(store.list_feeds())


def _matched(store: Store) -> list[tuple[str, str, str, float, tuple[str, ...]]]:
    return sorted((s.canonical_url, s.title, s.body, s.score, s.evidence) for s in store.matches(None, None, None))


def _articles(store: Store) -> dict[str, tuple[str, str]]:
    return {a.url: (a.title, a.body) for a in store.iter_articles()}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url, create=True) as store:
        yield store


def test_pruning_keeps_every_match_and_nothing_pruned_is_fetched_again(store: Store, db_url: str) -> None:
    with LocalServer() as server:
        _serve(server)
        store.sync_feeds([(server.url("/a.xml"), None, None)])
        _pass(store, db_url)
        matched = _matched(store)
        assert {url.rsplit("/", 1)[1] for url, *_rest in matched} == {str(i) for i in ZEBRA}
        assert all(body for _url, _title, body, _score, _evidence in matched)
        now = datetime.now(UTC)

        # 60 days on: the unmatched articles lose their text, nothing is deleted yet.
        assert prune(store, POLICY, now + timedelta(days=60), dry_run=True) == PruneCounts(0, PAGES - len(ZEBRA))
        assert store.count_articles() == PAGES and all(body for _t, body in _articles(store).values())
        assert prune(store, POLICY, now + timedelta(days=60)) == PruneCounts(0, PAGES - len(ZEBRA))
        articles = _articles(store)
        assert len(articles) == PAGES
        assert {url for url, (_title, body) in articles.items() if body} == {server.url(f"/p/{i}") for i in ZEBRA}
        assert all(title for title, _body in articles.values())        # titles and URLs stay
        assert _matched(store) == matched

        # 120 days on: they go; their URLs stay known.
        assert prune(store, POLICY, now + timedelta(days=120)) == PruneCounts(PAGES - len(ZEBRA), 0)
        assert set(_articles(store)) == {server.url(f"/p/{i}") for i in ZEBRA}
        assert _matched(store) == matched
        assert store.known_article_urls([server.url(f"/p/{i}") for i in range(PAGES)]) == \
            {server.url(f"/p/{i}") for i in range(PAGES)}
        assert prune(store, POLICY, now + timedelta(days=120)) == PruneCounts()     # nothing left to do

        # The next pass: the feed lists them again, and a second feed lists the same pages under
        # other ids (the URL, not the entry, is what is known); only the one new article is fetched.
        requested = len(server.requests)
        _serve(server, also=["new"])
        server.routes["/p/new"] = (200, HTML_TYPE, article_page("Article new", "A new zebra by the harbour."))
        server.routes["/b.xml"] = (200, RSS_TYPE, rss([{"title": f"Again {i}", "guid": f"b-{i}",
                                                        "link": server.url(f"/p/{i}")} for i in range(PAGES)]))
        store.sync_feeds([(server.url("/b.xml"), None, None)])
        _pass(store, db_url)
        pages = [path for path in server.paths()[requested:] if path.startswith("/p/")]
        assert pages == ["/p/new"]
        assert store.count_articles() == len(ZEBRA) + 1
        assert [s for s in _matched(store) if s[0] != server.url("/p/new")] == matched


def _old_articles(store: Store, n: int, *, matched: set[int], days_ago: int, first: int = 0) -> None:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    writes = [ArticleWrite(Article(url=f"https://news.example/a/{i}", final_url=f"https://news.example/a/{i}",
                                   feed_url="https://news.example/rss", title=f"Article {i}", body=f"Body {i}.",
                                   fetched_at=at + timedelta(seconds=i), summary=f"Summary {i}"),
                           [MatchResult("s", True, 0.9, ("title: zebra",), {"query": "1"})] if i in matched else [],
                           []) for i in range(first, first + n)]
    store.store_articles(writes, at)


def test_each_article_is_pruned_by_one_step_only_and_a_dry_run_counts_what_a_run_does(store: Store) -> None:
    _old_articles(store, 7, matched={1}, days_ago=200)               # unmatched ones deleted
    _old_articles(store, 5, matched={9}, days_ago=60, first=7)       # unmatched ones lose their text
    _old_articles(store, 3, matched=set(), days_ago=1, first=12)     # too young for either
    now = datetime.now(UTC)
    expected = PruneCounts(articles_deleted=6, bodies_dropped=4)
    assert prune(store, POLICY, now, dry_run=True) == expected
    assert prune(store, POLICY, now) == expected
    articles = _articles(store)
    assert sorted(int(url.rsplit("/", 1)[1]) for url in articles) == [1, *range(7, 15)]
    assert {int(url.rsplit("/", 1)[1]) for url, (_t, body) in articles.items() if body} == {1, 9, 12, 13, 14}
    assert prune(store, POLICY, now, dry_run=True) == PruneCounts()


def test_a_daemon_tick_prunes_a_bounded_number_of_batches_and_one_daemon_at_a_time(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import daemon

    _old_articles(store, 12, matched={0, 5}, days_ago=200)
    pruner = Pruner(store, RetentionSettings(drop_unmatched_after=90 * 86400.0, batch_size=2))
    monkeypatch.setattr(daemon, "_PRUNE_BATCHES_PER_TICK", 2)
    with advisory_lock(store, "retention") as mine:       # another daemon is pruning
        assert mine
        daemon.prune_some(store, pruner, threading.Event())
    assert store.count_articles() == 12
    daemon.prune_some(store, pruner, threading.Event())
    assert store.count_articles() == 12 - 4                          # 2 batches of 2
    daemon.prune_some(store, pruner, threading.Event())
    daemon.prune_some(store, pruner, threading.Event())
    assert sorted(a.url for a in store.iter_articles()) == ["https://news.example/a/0", "https://news.example/a/5"]
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(m.PrunedArticle)) == 10


def test_db_prune_dry_run_then_prune(tmp_path: Path, sqlite_url: str) -> None:
    with Store.open(sqlite_url, create=True) as store:
        _old_articles(store, 6, matched={2}, days_ago=400)
    config = make_config(tmp_path, sqlite_url, ["https://news.example/rss"])

    refused = monitor(config, "db", "prune", check=False)
    assert refused.returncode == 2 and "no retention policy" in refused.stderr and "Traceback" not in refused.stderr

    text = config.read_text(encoding="utf-8").replace('drop_unmatched_after = "0"', 'drop_unmatched_after = "1y"')
    config.write_text(text, encoding="utf-8")
    bad = monitor(config, "db", "prune", check=False)
    assert bad.returncode == 2 and "drop_unmatched_after" in bad.stderr and "Traceback" not in bad.stderr

    config.write_text(text.replace('drop_unmatched_after = "1y"', 'drop_unmatched_after = "365d"'), encoding="utf-8")
    dry = monitor(config, "db", "prune", "--dry-run")
    assert "would delete 5 unmatched articles" in dry.stdout and "nothing was written" in dry.stdout
    with Store.open(sqlite_url) as store:
        assert store.count_articles() == 6
    done = monitor(config, "db", "prune")
    assert "deleted 5 unmatched articles" in done.stdout
    with Store.open(sqlite_url) as store:
        assert [a.url for a in store.iter_articles()] == ["https://news.example/a/2"]
        assert [s.evidence for s in store.matches(None, None, None)] == [("title: zebra",)]
