"""Many feeds: a pass takes the hosts in turn, and a PostgreSQL daemon works through every due feed.

bench/many_feeds.py measures these at 100,000 feeds; here their behaviour is checked on a few.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from _httpserver import LocalServer, _send
from test_cli_e2e import make_config, monitor
from test_hostile import RSS_TYPE, rss

from monitor._types import FeedState
from monitor.pipeline import hosts_in_turn


def _feed(url: str, feed_id: int) -> FeedState:
    return FeedState(id=feed_id, url=url, title=None, source="config", enabled=True, interval_seconds=None, etag=None,
                     last_modified=None, last_fetched_at=None, last_status=None, last_error=None, error_count=0,
                     next_due_at=None)


def test_hosts_in_turn_interleaves_hosts_and_keeps_each_hosts_order() -> None:
    urls = [f"http://a.example/{i}" for i in range(4)] + ["http://b.example/0", "http://C.example/0"] + \
           [f"http://b.example/{i}" for i in (1, 2)]
    feeds = [_feed(url, n) for n, url in enumerate(urls)]
    turn = [f.url for f in hosts_in_turn(feeds)]
    assert turn == ["http://a.example/0", "http://b.example/0", "http://C.example/0",
                    "http://a.example/1", "http://b.example/1",
                    "http://a.example/2", "http://b.example/2",
                    "http://a.example/3"]
    assert hosts_in_turn(feeds) == hosts_in_turn(list(feeds))      # the same feeds, the same order
    assert hosts_in_turn([]) == []


def _recording(order: list[str], name: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        order.append(name)
        _send(handler, 200, RSS_TYPE, rss([]))
    return handle


def test_a_pass_asks_the_hosts_in_turn_not_one_outlets_feeds_first(tmp_path: Path) -> None:
    """Three feeds of one outlet listed first, then three of another: with one request at a time
    the pass alternates between them, so one outlet's feeds cannot hold every fetch thread."""
    order: list[str] = []
    with LocalServer(address="127.0.0.1") as a, LocalServer(address="127.0.0.2") as b:
        for server, host in ((a, "a"), (b, "b")):
            for i in range(3):
                server.routes[f"/{i}.xml"] = _recording(order, f"{host}{i}")
        feeds = [a.url(f"/{i}.xml") for i in range(3)] + [b.url(f"/{i}.xml") for i in range(3)]
        config = make_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", feeds)
        config.write_text(config.read_text(encoding="utf-8").replace("concurrency = 16", "concurrency = 1")
                          .replace("per_host = 2", "per_host = 1"), encoding="utf-8")
        result = monitor(config, "run", "--once")
    assert "feeds 6 ok" in result.stderr
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


@pytest.mark.postgres
def test_a_postgresql_daemon_checks_every_due_feed_in_one_tick(tmp_path: Path, pg_schema_url: str) -> None:
    """Ten due feeds, a daemon fetching two at a time and ticking every 30 s: all ten are checked in
    its first tick, batch after batch (it used to claim one batch a tick: two feeds in 30 s)."""
    order: list[str] = []
    with LocalServer() as server:
        for i in range(10):
            server.routes[f"/{i}.xml"] = _recording(order, str(i))
        config = make_config(tmp_path, pg_schema_url, [server.url(f"/{i}.xml") for i in range(10)])
        config.write_text(config.read_text(encoding="utf-8").replace("concurrency = 16", "concurrency = 2"),
                          encoding="utf-8")
        assert 'tick = "30s"' in config.read_text(encoding="utf-8")
        monitor(config, "db", "upgrade")
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started = datetime.now(UTC)
        try:
            deadline = time.monotonic() + 25      # within the first tick
            while time.monotonic() < deadline and len(order) < 10:
                time.sleep(0.1)
            daemon.send_signal(signal.SIGTERM)
            err = daemon.communicate(timeout=60)[1]
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert daemon.returncode == 0, err[-3000:]
    assert sorted(order, key=int) == [str(i) for i in range(10)], (order, started)     # each once
    assert "pass done" in err and "feeds 10 ok" in err, err[-3000:]
