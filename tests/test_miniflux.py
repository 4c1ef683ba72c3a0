"""The Miniflux webhook: signed calls in Miniflux's documented format end as stored matches;
everything else is refused before anything is queued.

A real uvicorn server on 127.0.0.1 runs the app; the entries' pages are served by LocalServer
(they carry the article text; the webhook carries only the summary, as most feeds do); the
database is a real SQLite file (and PostgreSQL when configured).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _apiserver import serving
from _httpserver import LocalServer
from sitegen import article_url, make_article, render_site

from monitor.cli import main
from monitor.config import MINIFLUX_SECRET_ENV, Settings, settings_from_dict
from monitor.integrations import miniflux
from monitor.server import create_app
from monitor.service import MonitorService

STORY = "trump-kim-summit-2018"
SECRET = "c4fdaf87900b72777cbe8e97d17b97a87d28ae078a462ef4ac5f2541fcf00ce6"
ARTICLES = Path(__file__).parent / "data" / "articles"
WEBHOOK = "/webhooks/miniflux"


@pytest.fixture(autouse=True)
def _no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MINIFLUX_SECRET_ENV, raising=False)


def _settings(db_url: str, **serve: Any) -> Settings:
    return settings_from_dict({
        "database": {"url": db_url},
        "fetch": {"allow_private_addresses": True},
        "stories": [{"id": STORY}],
        "serve": {"miniflux_secret": SECRET, **serve},
    })


def _article(name: str) -> dict:
    data = json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))
    return make_article(name, title=data["title"], summary=data["summary"], body=data["body"],
                        published=data["published"], lang=data["lang"])


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[tuple[LocalServer, list[dict]]]:
    """An on-topic and an off-topic article page, served by LocalServer."""
    articles = [_article("on-summit-day"), _article("neg-kardashian")]
    with LocalServer() as server:
        base = server.url("").rstrip("/")
        root = tmp_path / "site"
        render_site(articles, root, base)
        for a in articles:
            page = root / a["feed"] / a["path"].strip("/") / "index.html"
            server.routes[article_url(base, a)[len(base):]] = (
                200, {"Content-Type": "text/html; charset=utf-8"}, page.read_bytes())
        yield server, articles


def _event(server: LocalServer, articles: list[dict]) -> dict:
    """A new_entries event as Miniflux 2.x sends it (docs: miniflux.app/docs/webhooks.html)."""
    base = server.url("").rstrip("/")
    return {
        "event_type": "new_entries",
        "feed": {"id": 8, "user_id": 1, "feed_url": f"{base}/test-gazette/feed.xml", "site_url": base,
                 "title": "Test Gazette", "checked_at": "2023-09-10T12:48:43.428196-07:00"},
        "entries": [{
            "id": 231 + i, "user_id": 1, "feed_id": 8, "status": "unread",
            "hash": f"{i:064x}", "title": a["title"], "url": article_url(base, a), "comments_url": "",
            "published_at": a["published"], "created_at": "2023-09-10T12:48:43.428196123-07:00",
            "changed_at": "2023-09-10T12:48:43.428196-07:00",
            "content": f"<p>{a['summary']}</p>", "author": "", "share_code": "", "starred": False,
            "reading_time": 1, "enclosures": None, "tags": ["World"],
        } for i, a in enumerate(articles)],
    }


def _post(base_url: str, body: bytes, *, secret: str | None = SECRET, event: str | None = "new_entries",
          headers: dict[str, Any] | None = None) -> httpx.Response:
    sent: dict[str, Any] = {"Content-Type": "application/json", "User-Agent": "Miniflux/2.2.0"}
    if secret is not None:
        sent[miniflux.SIGNATURE_HEADER] = miniflux.sign(secret, body)
    if event is not None:
        sent[miniflux.EVENT_HEADER] = event
    return httpx.post(base_url + WEBHOOK, content=body, headers={**sent, **(headers or {})}, timeout=30)


def test_signed_new_entries_become_stored_matches_that_the_report_shows(
        pages: tuple[LocalServer, list[dict]], db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, articles = pages
    on, off = articles
    body = json.dumps(_event(server, articles)).encode("utf-8")
    with MonitorService(_settings(db_url)) as svc, serving(create_app(svc)) as base_url:
        svc.start()
        answer = _post(base_url, body)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"queued": 2, "ignored": None}
        assert svc.wait_idle(timeout=120)

        fetched = server.paths()
        assert article_url("", on) in fetched and article_url("", off) in fetched    # pages fetched
        stored = {a.title: a for a in svc.store.iter_articles()}
        assert stored[on["title"]].source == "page"
        assert on["body"].split("\n\n")[2][:60] in stored[on["title"]].body          # text from the page
        assert stored[on["title"]].feed_url == f"{server.url('').rstrip('/')}/test-gazette/feed.xml"
        feed = svc.store.get_feed(stored[on["title"]].feed_url)
        assert feed is not None and feed.source == "miniflux" and not feed.enabled
        assert [m.title for m in svc.store.matches([STORY], None, None)] == [on["title"]]

        # Miniflux does not retry, but a proxy may: the same event again stores nothing twice.
        assert _post(base_url, body).status_code == 202
        assert svc.wait_idle(timeout=60)
        assert svc.store.count_articles() == 2

    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[[stories]]\nid = "{STORY}"\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["--config", str(config), "report", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [story] = report["stories"]
    assert [m["title"] for m in story["matches"]] == [on["title"]]
    assert story["matches"][0]["url"] == article_url(server.url("").rstrip("/"), on)


@pytest.fixture
def webhook(sqlite_url: str) -> Iterator[tuple[MonitorService, str]]:
    """The app on a real socket, its service's worker not started: what is queued stays visible."""
    with MonitorService(_settings(sqlite_url, max_body_bytes=64 * 1024)) as svc, serving(create_app(svc)) as base_url:
        yield svc, base_url


def _minimal_event(**changes: Any) -> dict:
    event = {"event_type": "new_entries",
             "feed": {"id": 1, "user_id": 1, "feed_url": "https://example.org/feed.xml", "site_url": "https://example.org/",
                      "title": "Example"},
             "entries": [{"id": 1, "user_id": 1, "feed_id": 1, "hash": "abc", "title": "A title",
                          "url": "https://example.org/a", "published_at": "2018-06-12T08:00:00Z", "content": "<p>x</p>"}]}
    event.update(changes)
    return event


def test_unsigned_calls_are_refused_401(webhook: tuple[MonitorService, str]) -> None:
    svc, base_url = webhook
    answer = _post(base_url, json.dumps(_minimal_event()).encode(), secret=None)
    assert answer.status_code == 401
    assert "X-Miniflux-Signature" in answer.json()["detail"]
    assert svc.pending() == 0


@pytest.mark.parametrize("signature", [
    miniflux.sign("another secret", b"{}"),       # another secret
    "0" * 64,
    "not hex at all",
    "é" * 64,                                     # not even ASCII: refused, not a crash
])
def test_wrong_signatures_are_refused_403(webhook: tuple[MonitorService, str], signature: str) -> None:
    svc, base_url = webhook
    body = json.dumps(_minimal_event()).encode()
    answer = _post(base_url, body, secret=None, headers={miniflux.SIGNATURE_HEADER: signature.encode("utf-8")})
    assert answer.status_code == 403
    assert "does not match" in answer.json()["detail"]
    assert svc.pending() == 0


def test_a_signature_of_another_body_is_refused(webhook: tuple[MonitorService, str]) -> None:
    svc, base_url = webhook
    signed = json.dumps(_minimal_event()).encode()
    tampered = signed.replace(b"https://example.org/a", b"https://evil.example/a")
    answer = _post(base_url, tampered, secret=None, headers={miniflux.SIGNATURE_HEADER: miniflux.sign(SECRET, signed)})
    assert answer.status_code == 403 and svc.pending() == 0


def test_the_signature_is_accepted_in_capitals(webhook: tuple[MonitorService, str]) -> None:
    svc, base_url = webhook
    body = json.dumps(_minimal_event()).encode()
    answer = _post(base_url, body, secret=None, headers={miniflux.SIGNATURE_HEADER: miniflux.sign(SECRET, body).upper()})
    assert answer.status_code == 202 and svc.pending() == 1


def test_oversized_bodies_are_refused_413_declared_or_not(webhook: tuple[MonitorService, str]) -> None:
    svc, base_url = webhook
    big = json.dumps(_minimal_event(padding="x" * 100_000)).encode()
    declared = _post(base_url, big)                                     # Content-Length says so
    assert declared.status_code == 413
    assert "64" in declared.json()["detail"] or "65536" in declared.json()["detail"]

    def trickle() -> Iterator[bytes]:                                   # chunked: no length given
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    streamed = httpx.post(base_url + WEBHOOK, content=trickle(), timeout=30,
                          headers={"Content-Type": "application/json", miniflux.EVENT_HEADER: "new_entries",
                                   miniflux.SIGNATURE_HEADER: miniflux.sign(SECRET, big)})
    assert streamed.status_code == 413
    assert svc.pending() == 0


@pytest.mark.parametrize("body, fragment", [
    (b'{"event_type": "new_entries", "feed": ', "malformed JSON"),
    (b"\xff\xfe\x00garbage", "malformed JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),          # too deep for the parser (over the cap too)
])
def test_malformed_json_is_refused_400(sqlite_url: str, body: bytes, fragment: str) -> None:
    with MonitorService(_settings(sqlite_url)) as svc, serving(create_app(svc)) as base_url:
        answer = _post(base_url, body)
        assert answer.status_code == 400, answer.text
        assert fragment in answer.json()["detail"]
        assert svc.pending() == 0


@pytest.mark.parametrize("event, fragment", [
    ([1, 2, 3], "expected a JSON object"),
    (_minimal_event(entries="none"), "entries: Input should be a valid list"),
    (_minimal_event(feed={"id": 1, "title": "no url"}), "feed.feed_url: Field required"),
    (_minimal_event(feed={"id": 1, "feed_url": "javascript:alert(1)"}), "feed.feed_url: String should match"),
    (_minimal_event(feed={"id": "1", "feed_url": "https://example.org/feed"}), "feed.id: Input should be a valid integer"),
    (_minimal_event(entries=[{"id": 1, "url": 7}]), "entries[0].url: Input should be a valid string"),
    (_minimal_event(entries=[{"id": 1, "published_at": "yesterday"}]), "entries[0].published_at"),
    (_minimal_event(entries=[{"id": 1, "published_at": "2018-06-12T08:00:00"}]), "timezone"),
    (_minimal_event(event_type="save_entry"), "disagrees"),
])
def test_wrong_shapes_are_refused_422_with_what_is_wrong(webhook: tuple[MonitorService, str], event: Any,
                                                          fragment: str) -> None:
    svc, base_url = webhook
    answer = _post(base_url, json.dumps(event).encode())
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["detail"]
    assert svc.pending() == 0


def test_without_a_secret_the_webhook_refuses_everything(sqlite_url: str) -> None:
    settings = settings_from_dict({"database": {"url": sqlite_url}, "stories": [{"id": STORY}]})
    assert settings.serve.webhook_secret is None
    with MonitorService(settings) as svc, serving(create_app(svc)) as base_url:
        for secret in (None, "", SECRET):
            answer = _post(base_url, json.dumps(_minimal_event()).encode(), secret=secret)
            assert answer.status_code == 503
            assert "serve.miniflux_secret" in answer.json()["detail"] and MINIFLUX_SECRET_ENV in answer.json()["detail"]
        assert httpx.get(base_url + "/api/health").json()["miniflux_webhook"] == "disabled"
        assert svc.pending() == 0


def test_the_environment_secret_takes_precedence(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MINIFLUX_SECRET_ENV, "from the environment")
    with MonitorService(_settings(sqlite_url)) as svc, serving(create_app(svc)) as base_url:
        body = json.dumps(_minimal_event()).encode()
        assert _post(base_url, body).status_code == 403                                   # the file's secret
        assert _post(base_url, body, secret="from the environment").status_code == 202
        assert svc.pending() == 1


@pytest.mark.parametrize("event, body_event", [("save_entry", "save_entry"), ("category_refresh", None)])
def test_other_events_are_acknowledged_and_ignored(webhook: tuple[MonitorService, str], event: str,
                                                   body_event: str | None) -> None:
    svc, base_url = webhook
    document = {"event_type": body_event, "entry": {"id": 592, "url": "https://example.org/article"}}
    answer = _post(base_url, json.dumps(document).encode(), event=event)
    assert answer.status_code == 202
    assert answer.json()["queued"] == 0 and "ignored" in answer.json()["ignored"]
    assert svc.pending() == 0


def test_the_event_type_may_come_from_the_body_alone(webhook: tuple[MonitorService, str]) -> None:
    svc, base_url = webhook
    answer = _post(base_url, json.dumps(_minimal_event()).encode(), event=None)
    assert answer.status_code == 202 and answer.json()["queued"] == 1
    assert svc.pending() == 1


# -- the payload -> entries, without HTTP -----------------------------------------------------------

def test_sign_is_hex_hmac_sha256() -> None:
    # RFC 4231, test case 2
    assert miniflux.sign("Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_entries_are_normalised_like_the_monitors_own() -> None:
    event = _minimal_event(entries=[
        {"id": 1, "hash": "h1", "title": "<b>Kim</b> &amp; Trump", "url": "/2018/06/12/summit",
         "published_at": "2018-06-12T08:00:00.123456789+09:00", "content": "<p>Body</p>", "author": "<i>Jo</i>",
         "tags": None, "enclosures": None, "something_new": {"x": 1}},
        {"id": 2, "hash": "", "url": "https://example.org/b?utm_source=miniflux", "published_at": "0001-01-01T00:00:00Z"},
        {"id": 3, "url": "javascript:alert(1)", "title": "no link", "content": "<p>only text</p>"},
    ])
    delivery = miniflux.read_event(json.dumps(event).encode(), "new_entries")
    assert (delivery.feed_url, delivery.feed_title) == ("https://example.org/feed.xml", "Example")
    first, second, third = delivery.entries
    assert (first.key, first.link, first.title, first.author) == ("h1", "https://example.org/2018/06/12/summit",
                                                                  "Kim & Trump", "Jo")
    assert first.content_html == "<p>Body</p>"
    assert first.published is not None and first.published.isoformat() == "2018-06-11T23:00:00.123456+00:00"
    assert second.key == "https://example.org/b" and second.published is None     # Go's zero time: no date
    assert third.link is None and third.content_html == "<p>only text</p>"


def test_an_empty_entries_list_queues_nothing() -> None:
    delivery = miniflux.read_event(json.dumps(_minimal_event(entries=[])).encode(), None)
    assert delivery.entries == () and delivery.ignored is None


@pytest.mark.parametrize("table, fragment", [
    ({"port": 70000}, "serve.port must lie in 1-65535"),
    ({"max_body_bytes": 10}, "serve.max_body_bytes must be at least 1024"),
    ({"miniflux_secret": 42}, "serve.miniflux_secret: expected a string"),
])
def test_serve_settings_are_checked(table: dict, fragment: str) -> None:
    from monitor.exceptions import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        settings_from_dict({"serve": table})
