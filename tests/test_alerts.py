"""Alerts: batching, retries with backoff, never twice (also across restarts and processes),
the webhook bodies and e-mail, against a real HTTP receiver and a real SMTP server."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _delivery import STORIES, STORY, Receiver, add_match, delivery_states
from _mailserver import MailServer, self_signed_cert

from monitor.alerts import DeliveryError, deliver_alerts, prepare_delivery
from monitor.alerts.message import MAX_ITEMS, batch_of, slack_body
from monitor.alerts.policy import SEND_HOLD, after_attempt
from monitor.alerts.webhook import post, redact
from monitor.config import DeliverySettings, Duration, FetchSettings, Settings, settings_from_dict
from monitor.db.alerts import AlertLedger
from monitor.db.store import Store
from monitor.exceptions import ConfigError

UTC = UTC
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url, create=True)
    yield s
    s.close()


def settings(alert: dict[str, Any], **sections: Any) -> Settings:
    return settings_from_dict({"fetch": {"allow_private_addresses": True}, "alerts": [{"story": STORY, **alert}],
                               **sections})


def titles(body: dict[str, Any]) -> list[str]:
    return sorted(m["title"] for m in body["matches"])


# --- batching -------------------------------------------------------------------------------

def test_new_matches_are_batched_into_one_message_per_interval(store: Store, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url, "interval": "15m"})
    add_match(store, 0, T0 - timedelta(hours=1))             # before the alert existed: never sent
    prepare_delivery(config, store, STORIES, T0)
    add_match(store, 1, T0 + timedelta(minutes=1))
    add_match(store, 2, T0 + timedelta(minutes=2))
    add_match(store, 3, T0 + timedelta(minutes=2), story="other")   # another story's match

    first = deliver_alerts(config, store, T0 + timedelta(minutes=3), stories=STORIES)
    assert (first.messages, first.matches, first.waiting) == (1, 2, 0)
    assert titles(receiver.json(0)) == ["Summit story 1", "Summit story 2"]

    add_match(store, 4, T0 + timedelta(minutes=5))
    add_match(store, 5, T0 + timedelta(minutes=6))
    waiting = deliver_alerts(config, store, T0 + timedelta(minutes=10), stories=STORIES)
    assert (waiting.messages, waiting.waiting) == (0, 2)     # the interval has not passed
    assert len(receiver.bodies) == 1

    second = deliver_alerts(config, store, T0 + timedelta(minutes=18), stories=STORIES)
    assert (second.messages, second.matches) == (1, 2)
    assert titles(receiver.json(1)) == ["Summit story 4", "Summit story 5"]
    assert deliver_alerts(config, store, T0 + timedelta(hours=2), stories=STORIES).messages == 0
    assert len(receiver.bodies) == 2


def test_the_json_body_carries_title_outlet_time_score_evidence_and_link(store: Store, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url})
    prepare_delivery(config, store, STORIES, T0)
    add_match(store, 1, T0 + timedelta(minutes=1), score=0.87)
    deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES)
    body = receiver.json(0)
    assert receiver.content_types[0] == "application/json"
    assert body["story"] == {"id": STORY, "title": "Trump–Kim summit"}
    assert (body["count"], body["more"]) == (1, 0)
    (m,) = body["matches"]
    assert m["url"] == "https://news.example/2026/11/25/story-1"
    assert (m["title"], m["outlet"], m["score"]) == ("Summit story 1", "Example News", 0.87)
    assert m["published"] == "2026-11-25T07:56:00+00:00"
    assert m["evidence"] == ["title: summit, Kim Jong Un"]
    assert "report 1" in m["passage"]


def test_min_score_filters_what_is_sent(store: Store, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url, "min_score": 0.8})
    prepare_delivery(config, store, STORIES, T0)
    add_match(store, 1, T0 + timedelta(minutes=1), score=0.95)
    add_match(store, 2, T0 + timedelta(minutes=1), score=0.6)
    deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES)
    assert titles(receiver.json(0)) == ["Summit story 1"]


# --- retries --------------------------------------------------------------------------------

def test_a_failed_webhook_is_retried_with_backoff_and_delivered_once(store: Store) -> None:
    receiver = Receiver(statuses=(500, 503))
    try:
        config = settings({"webhook": receiver.url}, delivery={"retry_initial": "1m", "retry_max": "1h"})
        prepare_delivery(config, store, STORIES, T0)
        add_match(store, 1, T0 + timedelta(minutes=1))
        t = T0 + timedelta(minutes=2)
        failed = deliver_alerts(config, store, t, stories=STORIES)
        assert (failed.messages, failed.failed, failed.waiting) == (0, 1, 1)
        # The first retry waits retry_initial; the second twice that.
        assert deliver_alerts(config, store, t + timedelta(seconds=59), stories=STORIES).failed == 0
        assert len(receiver.bodies) == 1
        assert deliver_alerts(config, store, t + timedelta(seconds=60), stories=STORIES).failed == 1
        t2 = t + timedelta(seconds=60)
        assert deliver_alerts(config, store, t2 + timedelta(seconds=119), stories=STORIES).messages == 0
        delivered = deliver_alerts(config, store, t2 + timedelta(seconds=120), stories=STORIES)
        assert (delivered.messages, delivered.matches, delivered.failed) == (1, 1, 0)
        assert len(receiver.bodies) == 3 and receiver.bodies[0] != b""
        assert titles(receiver.json(2)) == ["Summit story 1"]
        assert deliver_alerts(config, store, t2 + timedelta(hours=5), stories=STORIES).messages == 0
        assert delivery_states(store, config.alerts[0].key) == {"sent": 1}
    finally:
        receiver.close()


def test_backoff_doubles_up_to_its_cap_and_gives_up_after_max_attempts() -> None:
    delivery = DeliverySettings(retry_initial=60, retry_max=300, max_attempts=5)  # type: ignore[arg-type]
    waits = [(after_attempt(ok=False, failures=n, now=T0, interval=900, delivery=delivery).at - T0).total_seconds()
             for n in range(1, 5)]
    assert waits == [60, 120, 240, 300]
    last = after_attempt(ok=False, failures=5, now=T0, interval=900, delivery=delivery)
    assert last.give_up and last.at == T0 + timedelta(seconds=900)
    assert after_attempt(ok=True, failures=0, now=T0, interval=900, delivery=delivery).at == T0 + timedelta(minutes=15)


def test_a_message_given_up_is_never_sent_later(store: Store) -> None:
    receiver = Receiver(statuses=(500, 500))
    try:
        config = settings({"webhook": receiver.url, "interval": "10m"},
                          delivery={"retry_initial": "1m", "max_attempts": 2})
        prepare_delivery(config, store, STORIES, T0)
        add_match(store, 1, T0 + timedelta(minutes=1))
        deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES)
        gave_up = deliver_alerts(config, store, T0 + timedelta(minutes=3), stories=STORIES)
        assert (gave_up.failed, gave_up.given_up) == (1, 1)
        add_match(store, 2, T0 + timedelta(minutes=4))
        later = deliver_alerts(config, store, T0 + timedelta(minutes=14), stories=STORIES)
        assert later.messages == 1
        assert titles(receiver.json(2)) == ["Summit story 2"]       # story 1 is not resent
        assert delivery_states(store, config.alerts[0].key) == {"failed": 1, "sent": 1}
    finally:
        receiver.close()


# --- never twice ----------------------------------------------------------------------------

def test_a_new_store_on_the_same_database_sends_nothing_again(db_url: str, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url, "interval": "0s"})
    with Store.open(db_url, create=True) as first:
        prepare_delivery(config, first, STORIES, T0)
        add_match(first, 1, T0 + timedelta(minutes=1))
        assert deliver_alerts(config, first, T0 + timedelta(minutes=2), stories=STORIES).messages == 1
    with Store.open(db_url) as restarted:
        prepare_delivery(config, restarted, STORIES, T0 + timedelta(hours=1))   # a restart registers again
        again = deliver_alerts(config, restarted, T0 + timedelta(hours=1), stories=STORIES)
        assert (again.messages, again.waiting) == (0, 0)
        add_match(restarted, 2, T0 + timedelta(hours=1, minutes=1))
        assert deliver_alerts(config, restarted, T0 + timedelta(hours=2), stories=STORIES).matches == 1
    assert [titles(receiver.json(i)) for i in range(len(receiver.bodies))] == [["Summit story 1"],
                                                                               ["Summit story 2"]]


def test_only_one_of_two_daemons_takes_the_send_slot(db_url: str, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url})
    with Store.open(db_url, create=True) as a, Store.open(db_url) as b:
        prepare_delivery(config, a, STORIES, T0)
        add_match(a, 1, T0 + timedelta(minutes=1))
        key = config.alerts[0].key
        AlertLedger(a).enqueue(key, 0.0, T0)
        now = T0 + timedelta(minutes=2)
        claims = [AlertLedger(s).claim(key, now, now + SEND_HOLD) for s in (a, b)]
        assert claims[0] is not None and [m.title for m in claims[0].matches] == ["Summit story 1"]
        assert claims[1] is None


def test_a_send_interrupted_by_a_crash_is_not_resent(store: Store, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url})
    prepare_delivery(config, store, STORIES, T0)
    add_match(store, 1, T0 + timedelta(minutes=1))
    key = config.alerts[0].key
    ledger = AlertLedger(store)
    ledger.enqueue(key, 0.0, T0)
    crashed_at = T0 + timedelta(minutes=2)
    assert ledger.claim(key, crashed_at, crashed_at + SEND_HOLD) is not None    # ...and the process dies
    add_match(store, 2, T0 + timedelta(minutes=3))
    assert deliver_alerts(config, store, crashed_at + SEND_HOLD - timedelta(seconds=1)).messages == 0
    after = deliver_alerts(config, store, crashed_at + SEND_HOLD, stories=STORIES)
    assert after.matches == 1 and titles(receiver.json(0)) == ["Summit story 2"]
    assert delivery_states(store, key) == {"failed": 1, "sent": 1}


def _write_config(path: Path, db_url: str, feeds: list[str], hook: str) -> None:
    lines = [f"[database]\nurl = {json.dumps(db_url)}", "[fetch]\nallow_private_addresses = true",
             *(f"[[feeds]]\nurl = {json.dumps(u)}" for u in feeds),
             '[[stories]]\nid = "trump-kim-summit-2018"',
             f'[[alerts]]\nstory = "trump-kim-summit-2018"\nwebhook = {json.dumps(hook)}\ninterval = "0s"']
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def test_run_once_sends_new_matches_and_a_second_process_sends_nothing(tmp_path: Path, sqlite_url: str,
                                                                       receiver: Receiver) -> None:
    from sitegen import serve_articles

    config = tmp_path / "monitor.toml"
    with serve_articles(tmp_path) as (_site, feeds):
        _write_config(config, sqlite_url, feeds, receiver.url)
        for _ in range(2):
            p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "run", "--once"],
                               capture_output=True, text=True, timeout=180, env=dict(os.environ, NO_COLOR="1"))
            assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
            assert "T0KEN-SECRET" not in p.stderr
    assert len(receiver.bodies) == 1, "the second process must send nothing"
    body = receiver.json(0)
    assert body["story"]["id"] == "trump-kim-summit-2018"
    assert body["count"] == 12 and len(body["matches"]) == 12 and body["more"] == 0
    assert all(m["url"].startswith("http://127.0.0.1:") and m["evidence"] for m in body["matches"])


# --- bodies and channels --------------------------------------------------------------------

def _stored(n: int, title: str, score: float = 0.9) -> Any:
    from monitor._types import StoredMatch

    url = f"https://news.example/{n}"
    return StoredMatch(story_id=STORY, score=score, evidence=("title names <Kim> & Trump",), matched_at=T0,
                       article_id=n, url=url, canonical_url=url, feed_url="https://news.example/rss", title=title,
                       outlet="Example <News>", published=T0, fetched_at=T0, lang="en",
                       body="A passage with <b>markup</b> & an ampersand.")


def test_slack_body_shape_and_escaping() -> None:
    batch = batch_of("a", STORY, "Trump–Kim summit", [_stored(1, "Kim <script>|x", 0.8), _stored(2, "Second", 0.95)])
    body = json.loads(slack_body(batch))
    assert body["text"] == "2 new matches: Trump–Kim summit"
    header, first, second = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "2 new matches: Trump–Kim summit"}}
    assert first["type"] == "section" and first["text"]["type"] == "mrkdwn"
    assert first["text"]["text"].startswith("*<https://news.example/2|Second>*")    # most relevant first
    text = second["text"]["text"]
    assert text.startswith("*<https://news.example/1|Kim &lt;script&gt;¦x>*")
    assert "Example &lt;News&gt; · 2026-11-25 08:00 UTC · score 0.80" in text
    assert "> A passage with &lt;b&gt;markup&lt;/b&gt; &amp; an ampersand." in text
    assert "_why: title names &lt;Kim&gt; &amp; Trump_" in text
    many = json.loads(slack_body(batch_of("a", STORY, "S", [_stored(i, f"T{i}") for i in range(MAX_ITEMS + 3)])))
    assert len(many["blocks"]) == MAX_ITEMS + 2
    assert many["blocks"][-1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "and 3 more"}]}


def test_slack_format_is_posted(store: Store, receiver: Receiver) -> None:
    config = settings({"webhook": receiver.url, "format": "slack"})
    prepare_delivery(config, store, STORIES, T0)
    add_match(store, 1, T0 + timedelta(minutes=1))
    deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES)
    body = receiver.json(0)
    assert body["text"] == "1 new match: Trump–Kim summit" and body["blocks"][0]["type"] == "header"


def test_a_private_webhook_is_refused_unless_allowed_and_its_secret_is_never_shown(receiver: Receiver) -> None:
    with pytest.raises(DeliveryError) as e:
        post(receiver.url, b"{}", "application/json", FetchSettings(allow_private_addresses=False))
    assert "refused" in str(e.value) and "T0KEN" not in str(e.value)
    assert receiver.bodies == []
    assert redact("https://hooks.slack.example/services/T000/B000/XXXX") == "https://hooks.slack.example/…"
    with pytest.raises(DeliveryError, match=r"HTTP 404 \(refused\)"):
        post(receiver.server.url("/elsewhere"), b"{}", "application/json", FetchSettings(allow_private_addresses=True))


def test_a_webhook_receiver_trickling_its_answer_is_given_up_at_the_total_deadline() -> None:
    """Each header line comes well within the read timeout, and the headers never end: only the
    total deadline (fetch.total_timeout) can end the delivery."""
    from _httpserver import LocalServer

    def trickle(h: Any) -> None:
        h.close_connection = True
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not server.stopping.is_set():
            h.wfile.write(b"X-Slow: 1\r\n")
            h.wfile.flush()
            server.stopping.wait(0.1)

    with LocalServer() as server:
        server.routes["/hook"] = trickle
        fetch = FetchSettings(allow_private_addresses=True, read_timeout=Duration(2), total_timeout=Duration(1.5))
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            post(server.url("/hook"), b"{}", "application/json", fetch)
        assert time.monotonic() - started < 10      # not the minutes the endless headers would take


def test_email_alert_through_a_real_smtp_server(store: Store) -> None:
    with MailServer() as mail:
        config = settings({"email": ["desk@example.org", "editor@example.org"]},
                          smtp={"host": "127.0.0.1", "port": mail.port, "starttls": False,
                                "sender": "monitor@example.org"})
        prepare_delivery(config, store, STORIES, T0)
        add_match(store, 1, T0 + timedelta(minutes=1), title="Summit <b>on</b>")
        assert deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES).messages == 1
    (message,) = mail.messages
    assert mail.envelopes == [("monitor@example.org", ["desk@example.org", "editor@example.org"])]
    assert message["Subject"] == "monitor: 1 new match: Trump–Kim summit"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Summit <b>on</b>" in text and "https://news.example/2026/11/25/story-1" in text
    assert "Summit &lt;b&gt;on&lt;/b&gt;" in html and "<b>on</b>" not in html
    assert '<a href="https://news.example/2026/11/25/story-1">' in html and "<mark>Kim Jong Un</mark>" in html


def test_email_over_starttls_with_a_login_from_the_environment(store: Store, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("TEST_SMTP_USER", "monitor-bot")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-pw")
    caplog.set_level(logging.DEBUG)
    with MailServer(tls=(cert, key), login=("monitor-bot", "s3cret-pw")) as mail:
        smtp = {"host": "127.0.0.1", "port": mail.port, "sender": "monitor@example.org", "ca_file": str(cert),
                "username_env": "TEST_SMTP_USER", "password_env": "TEST_SMTP_PASSWORD"}
        config = settings({"email": ["desk@example.org"]}, smtp=smtp)
        prepare_delivery(config, store, STORIES, T0)
        add_match(store, 1, T0 + timedelta(minutes=1))
        assert deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES).messages == 1
        assert mail.logins == ["monitor-bot"] and mail.used_tls == [True]

        # A wrong password fails, is retried later, and is never written anywhere.
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-pw")
        add_match(store, 2, T0 + timedelta(minutes=3))
        failed = deliver_alerts(config, store, T0 + timedelta(minutes=30), stories=STORIES)
        assert (failed.messages, failed.failed) == (0, 1)
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text
    assert "login refused" in caplog.text


def test_starttls_is_required_when_configured(store: Store) -> None:
    with MailServer() as mail:             # offers no STARTTLS
        config = settings({"email": ["desk@example.org"]},
                          smtp={"host": "127.0.0.1", "port": mail.port, "sender": "monitor@example.org"})
        prepare_delivery(config, store, STORIES, T0)
        add_match(store, 1, T0 + timedelta(minutes=1))
        assert deliver_alerts(config, store, T0 + timedelta(minutes=2), stories=STORIES).failed == 1
        assert mail.messages == []


# --- configuration --------------------------------------------------------------------------

def test_unknown_story_and_unset_credentials_stop_the_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"alerts\[0\].story: no enabled story 'nope'; enabled: other, summit"):
        prepare_delivery(settings_from_dict({"alerts": [{"story": "nope", "webhook": "https://h.example/x"}]}),
                         store, STORIES, T0)
    monkeypatch.delenv("UNSET_SMTP_PASSWORD", raising=False)
    config = settings({"email": ["a@example.org"]},
                      smtp={"sender": "m@example.org", "password_env": "UNSET_SMTP_PASSWORD"})
    with pytest.raises(ConfigError, match="environment variable UNSET_SMTP_PASSWORD"):
        prepare_delivery(config, store, STORIES, T0)


@pytest.mark.parametrize("alert, message", [
    ({"story": STORY}, r"give exactly one of webhook or email"),
    ({"story": STORY, "webhook": "https://h.example/x", "email": ["a@example.org"]}, r"got webhook, email"),
    ({"story": STORY, "webhook": "file:///etc/passwd"}, r"webhook must be an http\(s\) URL"),
    ({"story": STORY, "email": ["not an address"]}, r"is not an e-mail address"),
    ({"story": STORY, "email": ["a@example.org"]}, r"sends e-mail: set sender in \[smtp\]"),
    ({"story": STORY, "webhook": "https://h.example/x", "format": "xml"}, r"format: expected one of json, slack"),
    ({"story": STORY, "webhook": "https://h.example/x", "every": "1h"}, r"unknown key alerts\[0\].every"),
    ({"story": STORY, "webhook": "https://h.example/x", "min_score": 5}, r"min_score must lie in 0-1"),
])
def test_alert_tables_are_validated(alert: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict({"alerts": [alert]})


def test_two_identical_alerts_need_ids() -> None:
    alert = {"story": STORY, "webhook": "https://h.example/x"}
    with pytest.raises(ConfigError, match=r"alerts\[1\] repeats alerts\[0\]"):
        settings_from_dict({"alerts": [alert, alert]})
    ok = settings_from_dict({"alerts": [alert, {**alert, "id": "second"}]})
    assert [a.key for a in ok.alerts][1] == "second"
