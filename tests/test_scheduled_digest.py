"""Scheduled digests: the cron parser, exactly one daemon sending each digest, retries, and
every destination (file, webhook, e-mail through a real SMTP server)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _delivery import STORIES, STORY, Receiver, add_match, digest_runs
from _mailserver import MailServer

from monitor.alerts import run_due_digests
from monitor.alerts.cron import CronSchedule
from monitor.config import Settings, settings_from_dict
from monitor.db.store import Store
from monitor.exceptions import ConfigError

UTC = UTC
# A Wednesday.
T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


# --- cron -----------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, after, expected", [
    ("0 7 * * *", "2026-11-25T06:59:00", "2026-11-25T07:00:00"),
    ("0 7 * * *", "2026-11-25T07:00:00", "2026-11-26T07:00:00"),           # strictly after
    ("*/15 * * * *", "2026-11-25T07:01:30", "2026-11-25T07:15:00"),
    ("30 8 * * 1-5", "2026-11-27T09:00:00", "2026-11-30T08:30:00"),         # Friday -> Monday
    ("0 9 * * 0", "2026-11-25T00:00:00", "2026-11-29T09:00:00"),            # 0 is Sunday
    ("0 9 * * 7", "2026-11-25T00:00:00", "2026-11-29T09:00:00"),            # ...and so is 7
    ("0 9 * * sat,sun", "2026-11-25T00:00:00", "2026-11-28T09:00:00"),
    ("0 0 1 jan *", "2026-11-25T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 13 * fri", "2026-11-25T00:00:00", "2026-11-27T00:00:00"),         # day OR weekday, as cron does
    ("0 0 29 2 *", "2026-11-25T00:00:00", "2028-02-29T00:00:00"),
    ("@daily", "2026-11-25T12:00:00", "2026-11-26T00:00:00"),
    ("5 4-6/2 * * *", "2026-11-25T04:06:00", "2026-11-25T06:05:00"),
])
def test_cron_next_fire_time(expression: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expression).next_after(at(after)) == at(expected)


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    paris = CronSchedule.parse("0 7 * * *", "Europe/Paris")
    assert paris.next_after(at("2026-07-01T00:00:00")) == at("2026-07-01T05:00:00")   # UTC+2 in summer
    assert paris.next_after(at("2026-12-01T00:00:00")) == at("2026-12-01T06:00:00")   # UTC+1 in winter
    # 02:30 does not exist on the night clocks go forward; it fires once all the same.
    spring = CronSchedule.parse("30 2 * * *", "Europe/Paris")
    fired = spring.next_after(at("2026-03-29T00:00:00"))
    assert at("2026-03-29T00:00:00") < fired < at("2026-03-30T00:00:00")


def test_cron_latest_time_in_a_window() -> None:
    hourly = CronSchedule.parse("0 * * * *")
    assert hourly.latest_in(at("2026-11-25T04:30:00"), at("2026-11-25T07:10:00")) == at("2026-11-25T07:00:00")
    assert hourly.latest_in(at("2026-11-25T07:00:00"), at("2026-11-25T07:59:00")) is None


@pytest.mark.parametrize("expression, message", [
    ("0 7 * *", "needs 5 fields"),
    ("60 * * * *", "minute field '60' must lie in 0-59"),
    ("0 7 * * mon-funday", "day of week field 'mon-funday' is not valid"),
    ("*/0 * * * *", "must lie in"),
    ("0 0 31 2 *", "never fires"),
])
def test_bad_cron_expressions_are_explained(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CronSchedule.parse(expression).next_after(T0)


def test_digest_tables_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"digests\[0\]: cron expression '0 7 \* \*' needs 5 fields"):
        settings_from_dict({"digests": [{"cron": "0 7 * *", "path": "d.html"}]})
    with pytest.raises(ConfigError, match=r"digests\[0\]: give exactly one of email, webhook or path"):
        settings_from_dict({"digests": [{"cron": "0 7 * * *"}]})
    with pytest.raises(ConfigError, match=r"digests\[0\]: unknown time zone 'Mars/Olympus'"):
        settings_from_dict({"digests": [{"cron": "0 7 * * *", "timezone": "Mars/Olympus", "path": "d.html"}]})


# --- exactly once ---------------------------------------------------------------------------

@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url, create=True)
    yield s
    s.close()


def digest_settings(tmp_path: Path, digest: dict[str, Any], **sections: Any) -> Settings:
    return settings_from_dict({"fetch": {"allow_private_addresses": True},
                               "digests": [{"cron": "0 7 * * *", "story": STORY, **digest}], **sections},
                              path=tmp_path / "monitor.toml")


def test_the_digest_is_written_once_with_the_window_before_its_time(tmp_path: Path, store: Store) -> None:
    config = digest_settings(tmp_path, {"path": "digests/%Y-%m-%d.html", "window": "1d"})
    add_match(store, 1, T0 - timedelta(hours=3))                  # in the window
    add_match(store, 2, T0 - timedelta(days=2))                   # before it
    assert run_due_digests(config, store, STORIES, T0 - timedelta(minutes=1)).sent == 0
    assert run_due_digests(config, store, STORIES, T0 + timedelta(minutes=1)).sent == 1
    assert run_due_digests(config, store, STORIES, T0 + timedelta(minutes=2)).sent == 0
    page = (tmp_path / "digests" / "2026-11-25.html").read_text(encoding="utf-8")
    assert "Summit story 1" in page and "Summit story 2" not in page and "<svg" in page
    assert [name.name for name in (tmp_path / "digests").iterdir()] == ["2026-11-25.html"]


def test_several_daemons_at_once_send_each_digest_once(db_url: str, tmp_path: Path) -> None:
    receiver = Receiver()
    stores = [Store.open(db_url, create=True)]
    stores += [Store.open(db_url) for _ in range(3)]
    try:
        config = digest_settings(tmp_path, {"webhook": receiver.url, "format": "json"})
        add_match(stores[0], 1, T0 - timedelta(hours=1))
        start = threading.Barrier(len(stores))
        results: list[int] = []

        def daemon(s: Store) -> None:
            start.wait()
            results.append(run_due_digests(config, s, STORIES, T0 + timedelta(seconds=30)).sent)

        threads = [threading.Thread(target=daemon, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [0, 0, 0, 1]
        assert len(receiver.bodies) == 1 and receiver.content_types[0].startswith("application/json")
        (story,) = json.loads(receiver.bodies[0])["stories"]
        assert [m["title"] for m in story["matches"]] == ["Summit story 1"]
    finally:
        for s in stores:
            s.close()
        receiver.close()


def test_a_digest_missed_by_more_than_an_hour_is_skipped(tmp_path: Path, store: Store) -> None:
    config = digest_settings(tmp_path, {"path": "d.html"})
    assert run_due_digests(config, store, STORIES, T0 + timedelta(hours=1, minutes=1)).sent == 0
    assert not (tmp_path / "d.html").exists()


def test_a_failed_digest_is_retried_with_backoff(tmp_path: Path, store: Store) -> None:
    receiver = Receiver(statuses=(500,))
    try:
        config = digest_settings(tmp_path, {"webhook": receiver.url, "format": "markdown"},
                                 delivery={"retry_initial": "5m"})
        first = run_due_digests(config, store, STORIES, T0)
        assert (first.sent, first.failed) == (0, 1)
        assert run_due_digests(config, store, STORIES, T0 + timedelta(minutes=4)).sent == 0
        assert run_due_digests(config, store, STORIES, T0 + timedelta(minutes=5)).sent == 1
        assert len(receiver.bodies) == 2 and receiver.content_types[1] == "text/markdown; charset=utf-8"
        assert digest_runs(store, config.digests[0].key) == [(T0, "sent", 2)]
    finally:
        receiver.close()


def test_the_html_digest_by_email(tmp_path: Path, store: Store) -> None:
    add_match(store, 1, T0 - timedelta(hours=2))
    with MailServer() as mail:
        config = digest_settings(tmp_path, {"email": ["desk@example.org"]},
                                 smtp={"host": "127.0.0.1", "port": mail.port, "starttls": False,
                                       "sender": "monitor@example.org"})
        assert run_due_digests(config, store, STORIES, T0).sent == 1
    (message,) = mail.messages
    assert message["Subject"] == "monitor digest, 2026-11-25: Trump–Kim summit"
    assert "Summit story 1" in message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "<svg" in html and "Summit story 1" in html


def test_run_once_writes_a_due_digest(tmp_path: Path, sqlite_url: str) -> None:
    from sitegen import serve_articles

    config = tmp_path / "monitor.toml"
    with serve_articles(tmp_path) as (_site, feeds):
        config.write_text("\n\n".join([
            f'[database]\nurl = {json.dumps(sqlite_url)}', "[fetch]\nallow_private_addresses = true",
            *(f"[[feeds]]\nurl = {json.dumps(u)}" for u in feeds), '[[stories]]\nid = "trump-kim-summit-2018"',
            # Every minute, covering all time: the digest of the minute that just began is due.
            '[[digests]]\ncron = "* * * * *"\nwindow = "36500d"\npath = "out/digest.html"',
        ]) + "\n", encoding="utf-8")
        p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "run", "--once"],
                           capture_output=True, text=True, timeout=180, env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    page = (tmp_path / "out" / "digest.html").read_text(encoding="utf-8")
    assert "<svg" in page and "Also carried by" in page and "Trump–Kim summit" in page
