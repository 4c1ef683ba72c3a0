"""Crash safety: a real `monitor` process killed mid-pass loses nothing and duplicates nothing.

A slow local site (every page takes a moment) makes a pass last seconds; the process is
SIGKILLed as soon as the database holds k articles, for several k, restarted, and finally run
to the end. After every kill the database must be consistent (every article with its matches
and its entry, nothing half-written, no validators stored for a feed whose entries are not all
stored), and at the end it must hold exactly the expected articles and matches, each once.
SIGTERM must stop the daemon within seconds, even with a request hanging, in the same state.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _httpserver import LocalServer, delayed, never_answer
from sqlalchemy import Engine, text
from test_cli_e2e import dump_toml
from test_hostile import HTML_TYPE, article_page, rss

from monitor.db.engine import make_engine

PAGES = 16
ZEBRA = {i for i in range(PAGES) if i % 3 == 0}       # the articles the test story matches
PAGE_DELAY = 0.25                                    # seconds each page takes to arrive
STORY = {"id": "zebra-watch", "title": "Zebra sightings", "threshold": 0.5, "bias": -3.0,
         "rules": [{"name": "query", "required": True, "weight": 6.0, "params": {"query": "zebra"}}]}


def title(i: int) -> str:
    return f"Crash test article {i:02d}"


class SlowSite:
    """One feed of PAGES articles whose pages each take PAGE_DELAY; the feed answers 304 to its ETag."""

    ETAG = '"crash-v1"'

    def __init__(self) -> None:
        self.server = LocalServer()
        items = [{"title": title(i), "guid": f"a{i}", "link": self.server.url(f"/a/{i}"),
                  "description": f"Summary {i}."} for i in range(PAGES)]
        self.feed_body = rss(items)
        self.server.routes["/feed.xml"] = self._feed
        for i in range(PAGES):
            lead = f"{title(i)}: {'a zebra crossed the square' if i in ZEBRA else 'the square stayed empty'}."
            self.server.routes[f"/a/{i}"] = delayed(PAGE_DELAY, 200, HTML_TYPE, article_page(title(i), lead))

    def _feed(self, h: Any) -> None:
        if h.headers.get("If-None-Match") == self.ETAG:
            h.send_response(304)
            h.end_headers()
            return
        h.send_response(200)
        for name, value in {"Content-Type": "application/rss+xml", "ETag": self.ETAG,
                            "Content-Length": str(len(self.feed_body))}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(self.feed_body)

    def url(self, path: str) -> str:
        return self.server.url(path)


@pytest.fixture
def site() -> Iterator[SlowSite]:
    s = SlowSite()
    try:
        yield s
    finally:
        s.server.close()


def write_config(tmp_path: Path, db_url: str, feeds: list[str], **fetch: Any) -> Path:
    cfg = {"database": {"url": db_url},
           "fetch": {"allow_private_addresses": True, "per_host": 2, **fetch},
           "schedule": {"tick": "1s"}, "extract": {"workers": 1},
           "feeds": [{"url": u} for u in feeds], "stories": [STORY]}
    path = tmp_path / "monitor.toml"
    path.write_text(dump_toml(cfg), encoding="utf-8")
    return path


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    # Its own process group, so that whatever it leaves behind can be cleaned up by its id.
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=config.parent, start_new_session=True)


def reap(proc: subprocess.Popen[str]) -> None:
    """Kill what is left of the process group of `proc` (extraction workers of a killed monitor)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=30)


def count(engine: Engine, table: str) -> int:
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    except Exception:   # before the first run has created the schema
        return 0


def wait_for_articles(engine: Engine, proc: subprocess.Popen[str], k: int) -> None:
    deadline = time.monotonic() + 60
    while count(engine, "articles") < k:
        assert proc.poll() is None, f"monitor ended before storing {k} articles: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"fewer than {k} articles after 60 s"
        time.sleep(0.02)


def check_consistent(engine: Engine, feed_url: str, *, complete: bool) -> int:
    """Every stored article has its entry and exactly its matches; nothing dangles. Returns #articles."""
    with engine.connect() as conn:
        articles = dict(conn.execute(text("SELECT id, title FROM articles")).all())
        matches = conn.execute(text("SELECT story_id, article_id FROM matches")).all()
        entries = conn.execute(text("SELECT entry_key, article_url FROM entries")).all()
        urls = dict(conn.execute(text("SELECT url, id FROM articles")).all())
        etag, status = conn.execute(text("SELECT etag, last_status FROM feeds WHERE url = :u"), {"u": feed_url}).one()
        failures = conn.execute(text("SELECT count(*) FROM page_failures")).scalar_one()
    assert len(set(articles.values())) == len(articles)                         # no article twice
    expected_matches = sorted(("zebra-watch", aid) for aid, t in articles.items() if int(t[-2:]) in ZEBRA)
    assert sorted(matches) == expected_matches                                  # each match once, none missing
    assert len(entries) == len(articles) and all(url in urls for _key, url in entries)
    assert sorted(key for key, _url in entries) == sorted(f"a{int(t[-2:])}" for t in articles.values())
    assert failures == 0
    if complete:
        assert etag == SlowSite.ETAG and status in ("ok", "not-modified")
    elif len(articles) < PAGES:
        # validators are stored only once every entry is: a restart must not be told "304"
        assert etag is None, "validators stored before all entries were"
    # (a kill that lands after the last batch of articles was written may find the validators
    # stored with them: every entry is stored by then)
    return len(articles)


def expire_dead_leases(engine: Engine) -> None:
    """On PostgreSQL `run --once` leases its feeds like a daemon, and a killed one keeps them until
    they expire (schedule.lease, minutes): let that time pass, as another daemon would see it."""
    with engine.begin() as conn:
        held = conn.execute(text("SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL")).scalar_one()
        conn.execute(text("UPDATE feeds SET lease_expires_at = now() - interval '1 second' "
                          "WHERE lease_owner IS NOT NULL"))
    assert held == 1, "the killed run --once held no lease on its feed"


def final_state(engine: Engine) -> None:
    with engine.connect() as conn:
        titles = sorted(conn.execute(text("SELECT title FROM articles")).scalars())
        matched = sorted(conn.execute(text(
            "SELECT a.title FROM matches m JOIN articles a ON a.id = m.article_id")).scalars())
    assert titles == [title(i) for i in range(PAGES)]
    assert matched == [title(i) for i in sorted(ZEBRA)]


@pytest.mark.parametrize("db, kill_points", [
    ("sqlite", (2, 7, 12)),
    pytest.param("postgresql", (5,), marks=pytest.mark.postgres),
])
def test_sigkill_mid_pass_loses_and_duplicates_nothing(request: pytest.FixtureRequest, tmp_path: Path,
                                                       site: SlowSite, db: str, kill_points: tuple[int, ...]) -> None:
    db_url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_schema_url")
    config = write_config(tmp_path, db_url, [site.url("/feed.xml")])
    engine = make_engine(db_url)
    try:
        for k in kill_points:
            proc = start(config, "run", "--once")
            try:
                wait_for_articles(engine, proc, k)
                proc.send_signal(signal.SIGKILL)              # the main process, mid-pass, no warning
                proc.wait(timeout=30)
            finally:
                reap(proc)
            stored = check_consistent(engine, site.url("/feed.xml"), complete=False)
            assert k <= stored <= PAGES
            if db == "postgresql":
                expire_dead_leases(engine)
        proc = start(config, "run", "--once")
        try:
            _out, err = proc.communicate(timeout=120)
        finally:
            reap(proc)
        assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
        check_consistent(engine, site.url("/feed.xml"), complete=True)
        final_state(engine)
        # and once more: the feed is unchanged (304), nothing is added
        proc = start(config, "run", "--once")
        try:
            _out, err = proc.communicate(timeout=120)
        finally:
            reap(proc)
        assert "0 new articles" in err and "1 unchanged" in err, err[-3000:]
        final_state(engine)
    finally:
        engine.dispose()


def test_sigterm_stops_the_daemon_within_seconds_in_a_consistent_state(tmp_path: Path, sqlite_url: str,
                                                                       site: SlowSite) -> None:
    """Mid-pass, with one request hanging on a server that never answers (read timeout 60 s)."""
    site.server.routes["/silent.xml"] = never_answer(site.server)
    config = write_config(tmp_path, sqlite_url, [site.url("/feed.xml"), site.url("/silent.xml")],
                          read_timeout=60, total_timeout=120)
    engine = make_engine(sqlite_url)
    try:
        proc = start(config, "run")
        try:
            wait_for_articles(engine, proc, 4)
            assert "/silent.xml" in site.server.paths()
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=10)          # "within a few seconds", with margin
        finally:
            reap(proc)
        assert proc.returncode == 0, err[-3000:]
        assert "SIGTERM received" in err and "daemon stopped cleanly" in err and "Traceback" not in err
        stored = check_consistent(engine, site.url("/feed.xml"), complete=False)
        assert stored < PAGES
        # what the stop left undone is done by the next run (the silent feed, still stored, fails fast now)
        config = write_config(tmp_path, sqlite_url, [site.url("/feed.xml")], read_timeout=1)
        proc = start(config, "run", "--once")
        try:
            _out, err = proc.communicate(timeout=120)
        finally:
            reap(proc)
        assert proc.returncode == 0, err[-3000:]
        check_consistent(engine, site.url("/feed.xml"), complete=True)
        final_state(engine)
    finally:
        engine.dispose()


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every living process below `root` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo += children.get(pid, [])
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")       # a zombie has exited; only its parent's reaping is left


def test_workers_end_with_a_killed_daemon_and_the_restart_says_what_it_recovered(
        tmp_path: Path, sqlite_url: str, site: SlowSite) -> None:
    """SIGKILL of a real `monitor run` mid-pass: its forkserver, extraction workers and resource
    tracker end on their own; the next daemon reports the unclean stop, and a clean stop removes the lock."""
    config = write_config(tmp_path, sqlite_url, [site.url("/feed.xml")])
    engine = make_engine(sqlite_url)
    lock = Path(sqlite_url.removeprefix("sqlite:///") + ".daemon.lock")
    try:
        proc = start(config, "run")
        try:
            wait_for_articles(engine, proc, 2)                  # pages were extracted: the workers run
            left = _descendants(proc.pid)
            assert any("forkserver" in cmd for cmd in left.values()), left
            assert any("resource_tracker" in cmd for cmd in left.values()), left
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            deadline = time.monotonic() + 30
            while any(_alive(pid) for pid in left) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not [cmd for pid, cmd in left.items() if _alive(pid)], "orphans outlived their daemon"
        finally:
            reap(proc)
        assert lock.exists()                                    # what a killed daemon leaves behind

        proc = start(config, "run")
        try:
            wait_for_articles(engine, proc, PAGES)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
        finally:
            reap(proc)
        assert proc.returncode == 0, err[-3000:]
        assert re.search(r"the previous daemon \(pid \d+\) did not stop cleanly", err), err[-3000:]
        assert "stale lock" in err
        assert not lock.exists(), "a clean stop leaves no lock file"
        gitignore = (Path(__file__).resolve().parent.parent / ".gitignore").read_text(encoding="utf-8")
        assert "*.db.daemon.lock" in gitignore.splitlines()
    finally:
        engine.dispose()
