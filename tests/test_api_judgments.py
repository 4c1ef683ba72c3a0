"""The read API's "why not" and the analysts' judgments over HTTP: GET near misses, GET and POST
judgments (writes need the API token, even where reads are open), on a real socket over a real
database (SQLite, then PostgreSQL)."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _apiserver import serving
from test_api import FOUND, STRIKE, SUMMIT, _article, _fill, _settings

from monitor._types import MatchResult
from monitor.config import API_TOKEN_ENV
from monitor.db.store import ArticleWrite
from monitor.db.story_models import rebuild
from monitor.server import create_app
from monitor.service import MonitorService

TOKEN = "judgment-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _store_near_misses(svc: MonitorService) -> None:
    for name, logit in (("strike-undated", -1.5), ("strike-dated", -0.4)):
        result = MatchResult(story_id=SUMMIT, matched=False, score=round(1 / (1 + math.exp(-logit)), 4),
                             evidence=(f"reference similarity of {name}", "<b>not</b> in the window"),
                             details={"logit": logit}, model_version="0123456789abcdef", near_miss=True)
        svc.store.store_articles([ArticleWrite(_article(name), [result], [])], FOUND)


@pytest.fixture
def open_api(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MonitorService, httpx.Client]]:
    """Reads open: no token configured."""
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    with MonitorService(_settings(db_url)) as svc, serving(create_app(svc)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        _fill(svc)
        _store_near_misses(svc)
        yield svc, client


@pytest.fixture
def guarded_api(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MonitorService, httpx.Client]]:
    monkeypatch.setenv(API_TOKEN_ENV, TOKEN)
    with MonitorService(_settings(db_url)) as svc, serving(create_app(svc)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        _fill(svc)
        yield svc, client


def test_near_misses_say_why_not_closest_first_and_page(open_api: tuple[MonitorService, httpx.Client]) -> None:
    svc, client = open_api
    page = client.get(f"/api/stories/{SUMMIT}/near-misses").json()
    assert page["total"] == 2 and page["next"] is None
    closest, farther = page["items"]
    assert closest["canonical_url"].endswith("/strike-dated") and farther["canonical_url"].endswith("/strike-undated")
    assert closest["logit"] == -0.4 and 0 < closest["score"] < 0.5
    assert closest["evidence"] == ["reference similarity of strike-dated", "<b>not</b> in the window"]
    assert closest["model_version"] == "0123456789abcdef"
    assert closest["title"] == "Dockers strike <script>alert(1)</script>"      # JSON carries text as it is
    assert closest["url"] == "https://port.example/strike-dated?x=1&y=<2>" and closest["filed_at"].startswith("2021-03-04")
    first = client.get(f"/api/stories/{SUMMIT}/near-misses", params={"limit": 1}).json()
    assert [n["canonical_url"] for n in first["items"]] == [closest["canonical_url"]]
    assert first["next"] == f"/api/stories/{SUMMIT}/near-misses?limit=1&offset=1"
    assert client.get(first["next"]).json()["items"] == [farther]
    window = client.get(f"/api/stories/{SUMMIT}/near-misses", params={"until": "2022-01-01"}).json()
    assert [n["canonical_url"] for n in window["items"]] == [closest["canonical_url"]]
    assert client.get(f"/api/stories/{STRIKE}/near-misses").json()["total"] == 0
    missing = client.get("/api/stories/no-such-story/near-misses")
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no story 'no-such-story'")
    # An article the story matched since (a backfill with a newer version) is no longer a near miss.
    matched = MatchResult(story_id=SUMMIT, matched=True, score=0.8, evidence=("now on",), details={"logit": 1.4})
    svc.store.store_articles([ArticleWrite(_article("strike-dated"), [matched], [])], FOUND)
    assert [n["canonical_url"] for n in client.get(f"/api/stories/{SUMMIT}/near-misses").json()["items"]] == [
        farther["canonical_url"]]


def test_without_a_token_reads_are_open_and_writes_refused(open_api: tuple[MonitorService, httpx.Client]) -> None:
    svc, client = open_api
    assert client.get(f"/api/stories/{SUMMIT}/judgments").json() == []
    refused = client.post(f"/api/stories/{SUMMIT}/judgments", json={"url": "https://news.example/on-revival",
                                                                     "label": "off"})
    assert refused.status_code == 403
    assert "serve.api_token" in refused.json()["detail"] and API_TOKEN_ENV in refused.json()["detail"]
    # Refused before the body is even read: a bad body gets the same answer.
    assert client.post(f"/api/stories/{SUMMIT}/judgments", json={"label": "maybe"}).status_code == 403
    assert client.get(f"/api/stories/{SUMMIT}/judgments").json() == []


def test_judgments_are_recorded_with_the_token_and_the_next_version_follows_them(
        guarded_api: tuple[MonitorService, httpx.Client]) -> None:
    svc, client = guarded_api
    path = f"/api/stories/{SUMMIT}/judgments"
    body = {"url": "https://NEWS.example/on-revival?utm_source=digest#comments", "label": "off",
            "note": "a revival of talks, not the summit", "author": "Ana  Lyst"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert client.post(path, json=body, headers=headers).status_code == 401
    made = client.post(path, json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    judged = made.json()
    assert {k: judged[k] for k in ("story_id", "url", "label", "author", "note", "in_force", "article_stored")} == {
        "story_id": SUMMIT, "url": "https://news.example/on-revival", "label": "off", "author": "Ana Lyst",
        "note": "a revival of talks, not the summit", "in_force": True, "article_stored": True}
    assert judged["title"] == _article("on-revival").title
    later = client.post(path, json={"url": "https://news.example/on-revival", "label": "on"}, headers=AUTH).json()
    assert later["author"] == "api" and later["note"] is None
    waiting = client.post(path, json={"url": "https://elsewhere.example/tomorrow", "label": "brief"}, headers=AUTH).json()
    assert waiting["article_stored"] is False and waiting["title"] is None

    history = client.get(path, headers=AUTH).json()
    assert [(j["url"], j["label"], j["in_force"]) for j in history] == [
        ("https://elsewhere.example/tomorrow", "brief", True), ("https://news.example/on-revival", "on", True),
        ("https://news.example/on-revival", "off", False)]
    [story] = [s for s in svc.stories if s.id == SUMMIT]
    upcoming, changed = rebuild(svc.store, story, dry_run=True)
    assert changed and upcoming.judged == {"https://news.example/on-revival": "on",
                                           "https://elsewhere.example/tomorrow": "brief"}
    missing = client.post("/api/stories/no-such-story/judgments", json=body, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no story 'no-such-story'")


@pytest.mark.parametrize("body, field, fragment", [
    ({"url": "https://news.example/a", "label": "maybe"}, "label", "'on', 'off' or 'brief'"),
    ({"url": "ftp://news.example/a", "label": "on"}, "url", "not an http(s) URL"),
    ({"url": "http://[::1", "label": "on"}, "url", "not an http(s) URL"),
    ({"label": "on"}, "url", "required"),
    ({"url": "https://news.example/a", "label": "on", "author": "   "}, "author", "pattern"),
    ({"url": "https://news.example/a", "label": "on", "note": "x" * 2001}, "note", "at most 2000"),
])
def test_a_judgment_that_does_not_validate_is_422_naming_the_field(
        guarded_api: tuple[MonitorService, httpx.Client], body: dict[str, Any], field: str, fragment: str) -> None:
    svc, client = guarded_api
    answer = client.post(f"/api/stories/{SUMMIT}/judgments", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["errors"]
    assert [p["loc"] for p in problems] == [["body", field]], problems
    assert fragment in problems[0]["msg"], problems
    assert client.get(f"/api/stories/{SUMMIT}/judgments", headers=AUTH).json() == []
