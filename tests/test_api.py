"""The read API of `monitor serve`: health, stories, matches (filters, paging) and the digest in
every format, on a real socket, over a real database holding known matches."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _apiserver import serving

from monitor._types import Article, MatchResult
from monitor.config import MINIFLUX_SECRET_ENV, Settings, settings_from_dict
from monitor.db.store import ArticleWrite
from monitor.feeds import external_entry
from monitor.server import create_app
from monitor.service import MonitorService

SUMMIT = "trump-kim-summit-2018"
STRIKE = "harbour-strike"
DORMANT = "dormant-story"
ARTICLES = Path(__file__).parent / "data" / "articles"
ROOT = Path(__file__).resolve().parent.parent
FOUND = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)    # when every article was first seen

# (article, story, score): the summit articles with their own dates, two strike articles (one
# undated: filed under FOUND) and one article both stories matched.
STORED = [
    ("on-cancellation-letter", SUMMIT, 0.91),
    ("on-revival", SUMMIT, 0.72),
    ("on-summit-day", SUMMIT, 0.98),
    ("on-aftermath", SUMMIT, 0.64),
    ("on-korean", SUMMIT, 0.83),
    ("strike-dated", STRIKE, 0.55),
    ("strike-undated", STRIKE, 0.97),
    ("on-summit-day", STRIKE, 0.51),
]


def _settings(db_url: str) -> Settings:
    query_rule = [{"name": "query", "weight": 6.0, "required": True, "params": {"query": "strike*"}}]
    return settings_from_dict({
        "database": {"url": db_url},
        "stories": [
            {"id": SUMMIT},
            {"id": STRIKE, "title": "Harbour <strike>", "description": "Dockers & harbours", "rules": query_rule},
            {"id": DORMANT, "title": "Dormant", "enabled": False, "rules": query_rule},
        ],
    })


def _article(name: str) -> Article:
    if name.startswith("strike"):
        dated = name == "strike-dated"
        return Article(url=f"https://port.example/{name}", final_url=f"https://port.example/{name}?x=1&y=<2>",
                       feed_url="https://port.example/rss", title="Dockers strike <script>alert(1)</script>",
                       body="Dockers went on strike at the harbour.\n\nShips wait offshore.", fetched_at=FOUND,
                       published=datetime(2021, 3, 4, 5, 6, tzinfo=UTC) if dated else None, outlet="Port News",
                       lang="en")
    data = json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))
    return Article(url=f"https://news.example/{name}", final_url=f"https://news.example/{name}",
                   feed_url="https://news.example/rss", title=data["title"], body=data["body"],
                   summary=data["summary"], fetched_at=FOUND, published=datetime.fromisoformat(data["published"]),
                   outlet="News Example", lang=data["lang"])


def _fill(svc: MonitorService) -> None:
    for name, story, score in STORED:
        result = MatchResult(story_id=story, matched=True, score=score, evidence=(f"evidence for {name}",),
                             best_passage=f"passage of {name}")
        svc.store.store_articles([ArticleWrite(_article(name), [result], [])], FOUND)


@pytest.fixture
def api(sqlite_url: str) -> Iterator[tuple[MonitorService, httpx.Client]]:
    with MonitorService(_settings(sqlite_url)) as svc, serving(create_app(svc)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        _fill(svc)
        yield svc, client


def _titles(items: list[dict]) -> list[str]:
    return [f"{m['story_id']}:{m['canonical_url'].rsplit('/', 1)[1]}" for m in items]


# -- health and stories --------------------------------------------------------------------

def test_health_reports_database_schema_and_inbox(api: tuple[MonitorService, httpx.Client],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    svc, client = api
    health = client.get("/api/health")
    assert health.status_code == 200 and health.headers["content-type"] == "application/json"
    body = health.json()
    assert body["status"] == "ok" and body["database"] == "sqlite" and body["schema_status"] == "current"
    assert body["inbox_pending"] == 0 and body["inbox_failed"] == 0
    assert body["miniflux_webhook"] == "disabled"
    svc.submit("miniflux", "https://example.org/feed", [external_entry(id="a", link="https://example.org/a")])
    assert client.get("/api/health").json()["inbox_pending"] == 1


def test_stories_list_every_configured_story_with_its_match_count(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    stories = {s["id"]: s for s in client.get("/api/stories").json()}
    assert list(stories) == [SUMMIT, STRIKE, DORMANT]
    assert (stories[SUMMIT]["matches"], stories[STRIKE]["matches"], stories[DORMANT]["matches"]) == (5, 3, 0)
    assert stories[DORMANT]["enabled"] is False and stories[SUMMIT]["enabled"] is True
    assert stories[SUMMIT]["start"].startswith("2018-03-08") and stories[STRIKE]["start"] is None
    assert stories[STRIKE]["title"] == "Harbour <strike>"          # JSON carries text as it is


def test_one_story_and_unknown_ones(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    summit = client.get(f"/api/stories/{SUMMIT}").json()
    assert summit["matches"] == 5 and 0 < summit["threshold"] < 1
    assert "window" in summit["rules"] and summit["reference_url"].startswith("https://")
    missing = client.get("/api/stories/no-such-story")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert missing.json() == {"detail": f"no story 'no-such-story'; configured: {DORMANT}, {STRIKE}, {SUMMIT}"}


# -- matches ---------------------------------------------------------------------------------

def test_matches_filters_and_pages(db_url: str) -> None:
    with MonitorService(_settings(db_url)) as svc, serving(create_app(svc)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        _fill(svc)
        everything = client.get("/api/matches").json()
        assert everything["total"] == 8 and everything["next"] is None and everything["limit"] == 50
        # newest first, by publication, else first seen (2024 for the undated strike article)
        assert _titles(everything["items"]) == [
            f"{STRIKE}:strike-undated", f"{STRIKE}:strike-dated", f"{SUMMIT}:on-aftermath", f"{SUMMIT}:on-korean",
            f"{STRIKE}:on-summit-day", f"{SUMMIT}:on-summit-day", f"{SUMMIT}:on-revival",
            f"{SUMMIT}:on-cancellation-letter"]
        undated = everything["items"][0]
        assert undated["published"] is None and undated["filed_at"] == "2024-01-02T03:04:05Z"
        assert undated["url"] == "https://port.example/strike-undated?x=1&y=<2>"
        assert undated["evidence"] == ["evidence for strike-undated"] and undated["score"] == 0.97

        strike = client.get("/api/matches", params={"story": STRIKE}).json()
        assert strike["total"] == 3 and {m["story_id"] for m in strike["items"]} == {STRIKE}
        both = client.get("/api/matches", params=[("story", STRIKE), ("story", SUMMIT)]).json()
        assert both["total"] == 8

        # [since, until): ISO 8601 with offsets, no offset meaning UTC, a date its midnight; the
        # summit-day article is filed at 08:00 UTC, the Korean one at 10:00 UTC
        morning = client.get("/api/matches", params={"since": "2018-06-12T08:00:00Z",
                                                     "until": "2018-06-12T10:00:00"}).json()
        assert _titles(morning["items"]) == [f"{STRIKE}:on-summit-day", f"{SUMMIT}:on-summit-day"]
        shifted = client.get("/api/matches", params={"since": "2018-06-12T10:00:01+02:00",
                                                     "until": "2018-06-12T10:00:00"}).json()
        assert shifted["total"] == 0                       # 08:00:01 UTC is after the 08:00 article
        day = client.get("/api/matches", params={"since": "2018-06-12", "until": "2018-06-13"}).json()
        assert day["total"] == 3
        assert client.get("/api/matches", params={"since": "2030-01-01", "until": "2020-01-01"}).json()["total"] == 0

        high = client.get("/api/matches", params={"min_score": 0.9}).json()
        assert sorted(m["score"] for m in high["items"]) == [0.91, 0.97, 0.98]

        # pages of 3 follow `next` to the end and give every match once, in order
        seen, link, pages = [], "/api/matches?story=trump-kim-summit-2018&story=harbour-strike&limit=3", 0
        while link:
            page = client.get(link).json()
            assert page["total"] == 8 and len(page["items"]) <= 3
            seen += _titles(page["items"])
            link, pages = page["next"], pages + 1
        assert pages == 3 and seen == _titles(everything["items"])

        past = client.get("/api/matches", params={"offset": 100}).json()
        assert past["items"] == [] and past["total"] == 8 and past["next"] is None


@pytest.mark.parametrize("params, fragment", [
    ({"limit": 0}, "greater than or equal to 1"),
    ({"limit": 501}, "less than or equal to 500"),
    ({"offset": -1}, "greater than or equal to 0"),
    ({"min_score": 1.5}, "less than or equal to 1"),
    ({"since": "last tuesday"}, "ISO 8601"),
    ({"until": "7"}, "ISO 8601"),                 # not seconds since 1970
    ({"until": "2018-02-30"}, "date"),
])
def test_bad_match_queries_are_422_naming_the_parameter(api: tuple[MonitorService, httpx.Client],
                                                        params: dict, fragment: str) -> None:
    _, client = api
    answer = client.get("/api/matches", params=params)
    assert answer.status_code == 422
    body = answer.json()
    problems = body["errors"]                 # one per reading tried: a date-time, a date
    assert {tuple(p["loc"][:2]) for p in problems} == {("query", next(iter(params)))}
    assert any(fragment in p["msg"] for p in problems), problems
    assert isinstance(body["detail"], str) and f"query {next(iter(params))}: " in body["detail"]


def test_every_error_has_the_shape_the_readme_documents(api: tuple[MonitorService, httpx.Client]) -> None:
    """README: errors are {"detail": "..."}; a 422 for invalid parameters adds `errors` (issue 15)."""
    _, client = api
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert 'Errors are `{"detail": "..."}`' in readme and '`errors`: `[{"loc": [...], "msg": "..."}]`' in readme
    answers = [client.get("/api/matches", params={"limit": 0}), client.get("/api/digest", params={"format": "pdf"}),
               client.get("/api/stories/nope"), client.get("/api/nothing-here"), client.delete("/api/stories")]
    assert [a.status_code for a in answers] == [422, 422, 404, 404, 405]
    for answer in answers:
        body = answer.json()
        assert isinstance(body["detail"], str) and body["detail"], body
        assert set(body) <= {"detail", "errors"}
    schema = client.get("/openapi.json").json()
    for path in ("/api/matches", "/api/digest"):
        invalid = schema["paths"][path]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert invalid == {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_matches_of_an_unknown_story_are_404(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    answer = client.get("/api/matches", params={"story": "nope"})
    assert answer.status_code == 404 and "no story 'nope'" in answer.json()["detail"]
    assert client.get("/api/matches", params={"story": DORMANT}).json()["total"] == 0   # known, no matches


# -- the digest --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, media_type", [
    ("json", "application/json"), ("markdown", "text/markdown; charset=utf-8"),
    ("html", "text/html; charset=utf-8"), ("text", "text/plain; charset=utf-8"), ("csv", "text/csv; charset=utf-8"),
])
def test_the_digest_in_every_format(api: tuple[MonitorService, httpx.Client], fmt: str, media_type: str) -> None:
    _, client = api
    answer = client.get("/api/digest", params={"format": fmt, "story": STRIKE})
    assert answer.status_code == 200 and answer.headers["content-type"] == media_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    text = answer.text
    if fmt == "json":
        [story] = answer.json()["stories"]
        assert story["id"] == STRIKE and story["figures"]["matches"] == 3
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "story_id" and len(rows) == 4
    elif fmt == "html":
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "Harbour &lt;strike&gt;" in text
    else:
        assert "Dockers strike" in text


def test_the_digest_defaults_to_every_enabled_story_in_json(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    digest = client.get("/api/digest").json()
    assert [s["id"] for s in digest["stories"]] == [SUMMIT, STRIKE]          # the dormant one is disabled
    assert digest["since"] is None and digest["until"] is None
    window = client.get("/api/digest", params={"story": SUMMIT, "since": "2018-06-01", "until": "2018-07-01"}).json()
    assert window["since"].startswith("2018-06-01T00:00:00") and window["until"].startswith("2018-07-01T00:00:00")
    assert [m["canonical_url"] for m in window["stories"][0]["matches"]] == [
        "https://news.example/on-summit-day", "https://news.example/on-korean"]


def test_the_digest_of_unknown_or_disabled_stories_is_404(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    for story in ("nope", DORMANT):
        answer = client.get("/api/digest", params={"story": story})
        assert answer.status_code == 404 and f"no enabled story '{story}'" in answer.json()["detail"]
    bad = client.get("/api/digest", params={"format": "pdf"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "format"]


# -- the documentation and the command ---------------------------------------------------------------

def test_openapi_schema_and_docs_are_served(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    schema = client.get("/openapi.json").json()
    assert {"/api/health", "/api/stories", "/api/stories/{story_id}", "/api/matches", "/api/digest",
            "/webhooks/miniflux"} <= set(schema["paths"])
    assert schema["paths"]["/webhooks/miniflux"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewEntriesEvent"}
    assert "NewEntriesEvent" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200
    unknown = client.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}


def test_the_pages_load_nothing_from_another_machine(api: tuple[MonitorService, httpx.Client]) -> None:
    """/, /docs and /redoc name only this server's addresses, and forbid others (issue 15)."""
    _, client = api
    for page in ("/", "/docs", "/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        addresses = re.findall(r'(?:src|href|spec-url)\s*=\s*"([^"]*)"', answer.text)
        addresses += re.findall(r"url: '([^']*)'", answer.text)       # Swagger UI's schema
        assert addresses and all(a.startswith("/") and not a.startswith("//") for a in addresses), (page, addresses)
        for asset in (a for a in addresses if a.startswith("/assets/")):
            assert client.get(asset).status_code == 200, asset
    redoc = client.get("/assets/docs/redoc.standalone.js")
    assert redoc.status_code == 200 and "cdn.redoc.ly" not in redoc.text


def test_the_front_page_escapes_what_it_shows(api: tuple[MonitorService, httpx.Client]) -> None:
    _, client = api
    page = client.get("/").text
    assert '<a href="/docs">' in page and '<a href="/redoc">' in page
    assert "Harbour &lt;strike&gt;" in page and "<strike>" not in page
    assert f'<a href="/api/stories/{SUMMIT}">' in page and "5 stored matches" in page
    assert f'/api/digest?story={STRIKE}&amp;format=html' in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_monitor_serve_runs_until_interrupted(tmp_path: Path, stop: signal.Signals) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "m.db"}"\n[[stories]]\nid = "{SUMMIT}"\n'
                      f'[serve]\nmax_body_bytes = 2048\n', encoding="utf-8")
    port = _free_port()
    env = {**os.environ, MINIFLUX_SECRET_ENV: "s3cret"}
    process = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "serve", "--port", str(port)],
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/api/health", process)
        assert health["miniflux_webhook"] == "ready" and health["schema_status"] == "current"
        too_big = httpx.post(f"http://127.0.0.1:{port}/webhooks/miniflux", content=b"x" * 4096,
                             headers={"X-Miniflux-Signature": "0" * 64})
        assert too_big.status_code == 413
    finally:
        process.send_signal(stop)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert "stopped serving" in errors          # the service was closed, not cut off
    assert f"read API http://127.0.0.1:{port}/api" in errors
    assert f"Miniflux webhook http://127.0.0.1:{port}/webhooks/miniflux" in errors


def _wait_for(url: str, process: subprocess.Popen[str]) -> Any:
    """The JSON at `url` once the server answers (it starts in a second or two)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=5).json()
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"monitor serve did not come up: {process.communicate()[1]}") from None
            time.sleep(0.1)


def test_a_configured_token_guards_the_read_api_but_not_the_webhook(sqlite_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_API_TOKEN", raising=False)
    settings = settings_from_dict({"database": {"url": sqlite_url}, "stories": [{"id": SUMMIT}],
                                   "serve": {"api_token": "s3cret-token"}})
    with MonitorService(settings) as svc, serving(create_app(svc)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            refused = client.get("/api/stories", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "serve.api_token" in refused.json()["detail"] and "s3cret" not in refused.text
        allowed = client.get("/api/stories", headers={"Authorization": "Bearer s3cret-token"})
        assert allowed.status_code == 200 and allowed.json()[0]["id"] == SUMMIT
        # The webhook has its own guard (the signature): without a secret it is refused as before.
        assert client.post("/webhooks/miniflux", content=b"{}").status_code == 503
