"""Three real `monitor run` daemons on one PostgreSQL share a news site: no feed is checked by two
daemons at once, every article is stored exactly once, and the feeds of a daemon killed mid-pass
are finished by the others once its leases expire."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from _httpserver import LocalServer, serve_site
from sitegen import make_article, render_site
from test_cli_e2e import exported, make_config

pytestmark = pytest.mark.postgres

FEEDS, PER_FEED = 12, 8


def _site(tmp_path: Path, server: LocalServer) -> list[str]:
    """Render FEEDS outlets of PER_FEED articles and serve them; pages answer slowly (0.15 s)."""
    articles = [make_article(f"f{f:02d}a{a}", feed=f"outlet-{f:02d}", outlet=f"Outlet {f:02d}",
                             path=f"/2018/06/{a + 1:02d}/story-{f:02d}-{a}", title=f"Story {a} of outlet {f:02d}",
                             body=f"First paragraph of story {a} of outlet {f}.\n\nSecond paragraph, with more words.")
                for f in range(FEEDS) for a in range(PER_FEED)]
    root = tmp_path / "site"
    feeds = render_site(articles, root, server.url("").rstrip("/"))
    serve_site(server, root, page_delay=0.15)
    return feeds


def _daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NO_COLOR="1"))


def test_three_daemons_share_the_work_and_take_over_a_killed_one(tmp_path: Path, pg_schema_url: str) -> None:
    with LocalServer() as server:
        feeds = _site(tmp_path, server)
        configs = []
        for n in range(3):
            (tmp_path / f"d{n}").mkdir()
            config = make_config(tmp_path / f"d{n}", pg_schema_url, feeds)
            text = config.read_text(encoding="utf-8")
            text = text.replace('tick = "30s"', 'tick = "1s"').replace('lease = "5m"', 'lease = "4s"')
            # each daemon claims as many feeds as it fetches at once: 4 of the 12
            text = text.replace("concurrency = 16", "concurrency = 4")
            text = text.replace("[fetch]\n", f'[fetch]\nuser_agent = "daemon-{n}"\n', 1)
            config.write_text(text, encoding="utf-8")
            configs.append(config)
        # the schema is created once, before the daemons start (docs/scaling.md)
        assert subprocess.run([sys.executable, "-m", "monitor", "--config", str(configs[0]), "db", "upgrade"],
                              capture_output=True, text=True, timeout=60).returncode == 0
        procs = [_daemon(c) for c in configs]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    r.headers.get("user-agent") == "daemon-0" and r.path.endswith("/") for r in list(server.requests)):
                time.sleep(0.05)
            procs[0].send_signal(signal.SIGKILL)     # mid-pass: it has fetched pages of its feeds, not all
            procs[0].wait(timeout=10)
            total, articles = FEEDS * PER_FEED, []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(articles) < total:
                time.sleep(0.5)
                articles = exported(configs[1])
            for p in procs[1:]:
                p.send_signal(signal.SIGTERM)
            errs = [p.communicate(timeout=20)[1] for p in procs[1:]]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()

    assert [p.returncode for p in procs[1:]] == [0, 0], errs
    urls = [a["url"] for a in articles]
    assert len(urls) == len(set(urls)) == FEEDS * PER_FEED            # every article, exactly once

    agents: dict[str, list[str]] = defaultdict(list)
    for r in server.requests:
        agents[r.path].append(r.headers.get("user-agent", ""))
    feed_checks = {p: a for p, a in agents.items() if p.endswith("feed.xml")}
    assert len(feed_checks) == FEEDS
    # the work was shared: every daemon checked feeds
    assert {ua for a in feed_checks.values() for ua in a} == {"daemon-0", "daemon-1", "daemon-2"}
    for path, uas in feed_checks.items():
        survivors = [ua for ua in uas if ua != "daemon-0"]
        # a feed is checked once by a live daemon, unless the killed one had finished it before dying
        assert len(survivors) <= 1, (path, uas)
        assert survivors or uas == ["daemon-0"], (path, uas)
    # the killed daemon's unfinished feeds were taken over once its leases expired
    taken_over = [p for p, uas in feed_checks.items() if "daemon-0" in uas and len(uas) == 2]
    assert taken_over
    # a page is fetched twice only when the killed daemon fetched it and died before storing it
    for path, uas in agents.items():
        if path.endswith("/") and len(uas) > 1:
            assert len(uas) == 2 and "daemon-0" in uas, (path, uas)
