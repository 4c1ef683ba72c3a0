"""End to end through the command line, as a user runs it: a real `monitor` process, a real
news site on 127.0.0.1, a real SQLite file or PostgreSQL database."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sitegen import load_articles, make_article, serve_articles

ROOT = Path(__file__).resolve().parent.parent
SUMMIT = "trump-kim-summit-2018"
# The bundled demo site: demo-01 .. demo-12 cover the summit story, the rest do not.
DEMO_ON = {f"demo-{i:02d}" for i in range(1, 13)}


def dump_toml(data: dict[str, Any]) -> str:
    """Just enough TOML writing for configs (tables, arrays of tables, scalars, lists)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    out, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            tables.append((k, v))
        else:
            out.append(f"{k} = {value(v)}")
    for k, v in tables:
        for item in (v if isinstance(v, list) else [v]):
            out.append(f"\n[[{k}]]" if isinstance(v, list) else f"\n[{k}]")
            out.extend(f"{ik} = {value(iv)}" for ik, iv in item.items())
    return "\n".join(out) + "\n"


def make_config(tmp_path: Path, db_url: str, feeds: list[str]) -> Path:
    """config.example.toml with only the contract's keys replaced, as outside checks do."""
    cfg = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    cfg["database"]["url"] = db_url
    cfg["fetch"]["allow_private_addresses"] = True
    cfg["feeds"] = [{"url": u} for u in feeds]
    path = tmp_path / "conf" / "monitor.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(dump_toml(cfg), encoding="utf-8")
    return path


def monitor(config: Path | None, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "monitor", *(["--config", str(config)] if config else []), *args]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=config.parent if config else None)
    assert "Traceback" not in p.stderr, p.stderr
    if check:
        assert p.returncode == 0, f"{cmd} -> {p.returncode}\n{p.stderr[-3000:]}"
    return p


def report_json(config: Path, *extra: str) -> dict[str, Any]:
    return json.loads(monitor(config, "report", "--format", "json", "--since", "2017-01-01", "--until", "2020-01-01", *extra).stdout)


def exported(config: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in monitor(config, "export", "articles").stdout.splitlines()]


def ids_by_url(articles: list[dict[str, str]], base: str) -> dict[str, str]:
    return {f"{base}/{a['feed']}{a['path'].rstrip('/')}/": a["id"] for a in articles}


def test_run_once_report_export_and_an_idempotent_second_pass(tmp_path: Path, db_url: str) -> None:
    articles = load_articles()
    with serve_articles(tmp_path) as (site, feeds):
        config = make_config(tmp_path, db_url, feeds)
        first = monitor(config, "run", "--once")
        assert "pass done" in first.stderr and f"feeds {len(feeds)} ok" in first.stderr
        report = report_json(config)
        export = exported(config)
        second = monitor(config, "run", "--once")
        assert "0 new articles" in second.stderr and "0 new matches" in second.stderr
        assert report_json(config)["stories"] == report["stories"]
        assert exported(config) == export

    by_url = ids_by_url(articles, site.base_url)
    # every article stored once, with its text, date and language
    assert sorted(by_url[a["url"]] for a in export) == sorted(by_url.values())
    truth = {a["id"]: a for a in articles}
    for a in export:
        row = truth[by_url[a["url"]]]
        assert a["title"] == row["title"]
        assert row["body"].split("\n\n")[0][:60] in a["body"]
        assert "Most read" not in a["body"] and "cookies" not in a["body"]
        assert a["published"] is not None and a["fetched_at"] and a["lang"] == row["lang"]
        assert a["feed_url"] in feeds

    # the summit story flags exactly the summit articles, with scores, evidence and clusters
    summit = next(s for s in report["stories"] if s["id"] == SUMMIT)
    flagged = {by_url[m["url"]] for m in summit["matches"]}
    assert flagged == DEMO_ON
    for m in summit["matches"]:
        assert 0 <= m["score"] <= 1 and m["evidence"] and m["outlet"]
    clusters = {by_url[m["url"]]: m["cluster"] for m in summit["matches"]}
    assert clusters["demo-03"] is not None
    assert clusters["demo-03"] == clusters["demo-04"] == clusters["demo-05"]
    assert clusters["demo-08"] != clusters["demo-03"]
    # every enabled story appears, even without matches
    assert {s["id"] for s in report["stories"]} >= {SUMMIT}


def test_report_window_and_every_format(tmp_path: Path, sqlite_url: str) -> None:
    with serve_articles(tmp_path) as (_site, feeds):
        config = make_config(tmp_path, sqlite_url, feeds)
        monitor(config, "run", "--once")
    may = report_json(config, "--since", "2018-05-01", "--until", "2018-06-01", "--story", SUMMIT)
    assert [s["id"] for s in may["stories"]] == [SUMMIT]
    published = [m["published"] for m in may["stories"][0]["matches"]]
    assert published and all("2018-05-01" <= p < "2018-06-01" for p in published)
    assert may["since"].startswith("2018-05-01T00:00:00") and may["until"].startswith("2018-06-01T00:00:00")

    for fmt, marker in [("text", "Trump"), ("markdown", "# "), ("html", "<svg"), ("csv", "story_id")]:
        out = monitor(config, "report", "--format", fmt, "--since", "2018-01-01").stdout
        assert marker in out, fmt
    target = tmp_path / "digest.html"
    monitor(config, "report", "--format", "html", "--output", str(target))
    assert target.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_page_failures_fall_back_to_feed_text_then_retry_then_summary(tmp_path: Path, sqlite_url: str) -> None:
    """A page that cannot be fetched never loses its entry: feed full text stands in at once;
    without it, the page is retried on later passes and finally stored from the summary."""
    arts = [make_article("full", feed="full-text", title="Full text survives", body="Alpha paragraph one.\n\nAlpha two."),
            make_article("plain", feed="plain-feed", title="Summary survives", summary="Only the summary is known.")]
    with serve_articles(tmp_path, arts, feed_formats={"full-text": "rss2-full", "plain-feed": "rss2"}) as (site, feeds):
        for a in arts:  # the pages vanish; the feeds stay
            page = site.root / a["feed"] / a["path"].strip("/")
            (page / "index.html").unlink()
            page.rmdir()                     # a 404, not a directory listing
        config = make_config(tmp_path, sqlite_url, feeds)
        p = monitor(config, "run", "--once")
        assert "1 new article (1 from feed text)" in p.stderr
        stored = {a["title"]: a for a in exported(config)}
        assert stored["Full text survives"]["body"].startswith("Alpha paragraph one.")
        assert stored["Full text survives"]["source"] == "feed-content"
        assert "Summary survives" not in stored                    # not yet: it will be retried
        monitor(config, "run", "--once")                          # attempt 2
        assert "Summary survives" not in {a["title"] for a in exported(config)}
        monitor(config, "run", "--once")                          # attempt 3: given up, kept from the feed
        stored = {a["title"]: a for a in exported(config)}
        assert stored["Summary survives"]["body"] == "Only the summary is known."
        assert stored["Summary survives"]["source"] == "summary"
        p = monitor(config, "run", "--once")
        assert "0 new articles" in p.stderr and len(exported(config)) == 2


def test_the_same_article_in_two_feeds_is_stored_once(tmp_path: Path, sqlite_url: str) -> None:
    one = make_article("a1", feed="wire-one", path="/2018/06/12/shared-story", title="Shared story")
    with serve_articles(tmp_path, [one]) as (_site, feeds):
        # a second feed that lists the same page, with tracking parameters on the link
        feed = (tmp_path / "site" / "wire-one" / "feed.xml").read_text(encoding="utf-8")
        (tmp_path / "site" / "wire-two").mkdir()
        (tmp_path / "site" / "wire-two" / "feed.xml").write_text(
            feed.replace("/shared-story/<", "/shared-story/?utm_source=rss&amp;utm_medium=feed<"), encoding="utf-8")
        config = make_config(tmp_path, sqlite_url, [*feeds, feeds[0].replace("wire-one", "wire-two")])
        monitor(config, "run", "--once")
    assert [a["title"] for a in exported(config)] == ["Shared story"]


def test_feeds_commands_and_opml_round_trip(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, ["https://config.example/rss"])
    assert monitor(config, "feeds", "add", "https://news.example/world.xml").stdout == "added https://news.example/world.xml\n"
    assert monitor(config, "feeds", "add", "https://config.example/rss").stdout == \
        "https://config.example/rss is already configured\n"
    listing = monitor(config, "feeds", "list").stdout
    assert "https://config.example/rss" in listing and "https://news.example/world.xml" in listing
    assert "never fetched" in listing and "next due now" in listing
    opml = monitor(config, "feeds", "export").stdout
    assert 'xmlUrl="https://news.example/world.xml"' in opml and opml.startswith("<?xml")
    assert monitor(config, "feeds", "remove", "https://news.example/world.xml").stdout == \
        "removed https://news.example/world.xml\n"
    assert monitor(config, "feeds", "remove", "https://news.example/world.xml").stdout == \
        "no feed https://news.example/world.xml\n"
    assert "https://news.example/world.xml" not in monitor(config, "feeds", "list").stdout
    (tmp_path / "subs.opml").write_text(opml, encoding="utf-8")
    assert "1 feed added" in monitor(config, "feeds", "import", str(tmp_path / "subs.opml")).stdout
    assert monitor(config, "feeds", "disable", "https://news.example/world.xml").stdout == \
        "disabled https://news.example/world.xml\n"
    assert "DISABLED" in monitor(config, "feeds", "list").stdout
    assert monitor(config, "feeds", "enable", "https://news.example/world.xml").stdout == \
        "enabled https://news.example/world.xml\n"


@pytest.mark.parametrize("args, message", [
    (["report", "--since", "last tuesday"], "is not a time"),
    (["report", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["report", "--story", "no-such-story"], "no enabled story 'no-such-story'"),
    (["report", "--since", "2018-06-01", "--until", "2018-05-01"], "--since must be earlier than --until"),
    (["feeds", "add", "file:///etc/passwd"], "is not an http(s) URL"),
    (["feeds", "enable", "https://unknown.example/rss"], "no feed https://unknown.example/rss"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["eval", "--corpus", "/nonexistent.jsonl"], "corpus file not found"),
])
def test_bad_command_lines_say_what_is_wrong(tmp_path: Path, sqlite_url: str, args: list[str], message: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    p = monitor(config, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr


def test_bad_config_is_reported_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\nurl = "sqlite:///m.db"\n[fetch]\nallow_private_adresses = true\n', encoding="utf-8")
    p = monitor(config, "run", "--once", check=False)
    assert p.returncode == 2
    assert f"{config}:4: unknown key fetch.allow_private_adresses" in p.stderr
    p = monitor(tmp_path / "missing.toml", "report", check=False)
    assert p.returncode == 2 and "configuration file not found" in p.stderr


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, "postgresql://nobody@127.0.0.1:1/none", [])
    p = monitor(config, "run", "--once", check=False)
    assert p.returncode == 1 and "127.0.0.1:1" in p.stderr


def test_db_commands_and_a_foreign_database_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    p = monitor(config, "db", "status", check=False)
    assert p.returncode == 1 and "empty" in p.stdout
    assert "was empty, now current" in monitor(config, "db", "upgrade").stdout
    assert "current" in monitor(config, "db", "status").stdout
    # a database holding someone else's tables is never migrated over
    other = tmp_path / "other.db"
    import sqlite3
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    config = make_config(tmp_path, f"sqlite:///{other}", [])
    p = monitor(config, "run", "--once", check=False)
    assert p.returncode == 1 and "has tables but no monitor schema version" in p.stderr
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_daemon_runs_feeds_and_stops_cleanly_on_sigterm(tmp_path: Path, sqlite_url: str) -> None:
    with serve_articles(tmp_path) as (_site, feeds):
        config = make_config(tmp_path, sqlite_url, feeds)
        text = config.read_text(encoding="utf-8").replace('tick = "30s"', 'tick = "1s"')
        config.write_text(text, encoding="utf-8")
        env = dict(os.environ, NO_COLOR="1")
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 90
            # Not before the daemon has created the database and taken its place: two processes
            # creating one SQLite database at once may find it locked.
            lock = Path(sqlite_url.removeprefix("sqlite:///") + ".daemon.lock")
            while time.monotonic() < deadline and not lock.exists() and proc.poll() is None:
                time.sleep(0.2)
            while time.monotonic() < deadline and len(exported(config)) < len(load_articles()):
                time.sleep(0.5)
            assert len(exported(config)) == len(load_articles())
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "daemon stopped cleanly" in err and "Traceback" not in err


def test_demo_runs_offline_in_one_command() -> None:
    p = subprocess.run([sys.executable, "-m", "monitor", "demo"], capture_output=True, text=True, timeout=180,
                       env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "pass done" in p.stderr
    assert "Singapore" in p.stdout and "also carried by" in p.stdout


def test_a_second_daemon_on_sqlite_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    env = dict(os.environ, NO_COLOR="1")
    first = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # The daemon writes its pid into the lock file once it holds the lock (register_daemon).
        lock = Path(sqlite_url.removeprefix("sqlite:///") + ".daemon.lock")
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text(encoding="utf-8").strip() == str(first.pid)):
            assert first.poll() is None, f"the first daemon ended: {first.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "the first daemon did not take the lock within 60 s"
            time.sleep(0.05)
        second = monitor(config, "run", check=False, timeout=60)
        assert second.returncode == 1
        assert "SQLite allows one daemon; use PostgreSQL for several" in second.stderr
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0
