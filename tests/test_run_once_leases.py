"""`monitor run --once` against a PostgreSQL database that live daemons share takes leases like
a daemon (issue 16, item 5): a feed another holder has leased is not fetched, its lease is left
alone, and the feeds the pass did check are handed back with their results."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from _httpserver import LocalServer
from sqlalchemy import select
from test_cli_e2e import make_config, monitor
from test_hostile import HTML_TYPE, RSS_TYPE, article_page, rss

from monitor.db import models as m
from monitor.db.leases import Release, claim_due_feeds, release_many
from monitor.db.store import Store

pytestmark = pytest.mark.postgres


def _serve(server: LocalServer, name: str) -> str:
    server.routes[f"/{name}.xml"] = (200, RSS_TYPE, rss([{"title": f"{name} story", "guid": f"{name}-1",
                                                          "link": server.url(f"/{name}/1")}]))
    server.routes[f"/{name}/1"] = (200, HTML_TYPE, article_page(f"{name} story", f"The {name} story of the day."))
    return server.url(f"/{name}.xml")


def _leases(store: Store) -> dict[str, tuple[str | None, int]]:
    with store.engine.connect() as conn:
        return {url: (owner, token) for url, owner, token in
                conn.execute(select(m.Feed.url, m.Feed.lease_owner, m.Feed.lease_token))}


def test_run_once_leaves_a_feed_another_daemon_holds_and_leases_the_rest(tmp_path: Path, pg_schema_url: str) -> None:
    with LocalServer() as server:
        held_url, free_url = _serve(server, "held"), _serve(server, "free")
        config = make_config(tmp_path, pg_schema_url, [held_url, free_url])
        with Store.open(pg_schema_url, create=True) as store:
            store.sync_feeds([(held_url, None, None), (free_url, None, None)])
            # A live daemon holds the first feed (the longest waiting: lowest id, never checked).
            [other] = claim_due_feeds(store, "daemon-elsewhere", datetime.now(UTC), 1, 300)
            assert other.feed.url == held_url

            first = monitor(config, "run", "--once")
            assert "1 feed left to the daemons holding them" in first.stderr
            assert "/free.xml" in server.paths() and "/free/1" in server.paths()
            assert not any(path.startswith("/held") for path in server.paths())
            leases = _leases(store)
            assert leases[held_url] == ("daemon-elsewhere", other.token)     # untouched
            assert leases[free_url][0] is None and leases[free_url][1] == 1  # leased once, handed back
            feeds = {f.url: f for f in store.list_feeds()}
            assert feeds[free_url].last_status == "ok" and feeds[held_url].last_status is None
            assert [a.url for a in store.iter_articles()] == [server.url("/free/1")]

            # Once the other daemon has handed its feed back, the next pass checks it.
            assert release_many(store, [Release(other)]) == [True]
            monitor(config, "run", "--once")
            assert "/held.xml" in server.paths() and "/held/1" in server.paths()
            assert server.paths().count("/free/1") == 1
            assert {owner for owner, _token in _leases(store).values()} == {None}
            assert store.count_articles() == 2
