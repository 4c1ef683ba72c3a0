"""Shared by the alert and scheduled-digest tests: a webhook receiver and stored matches."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

from _httpserver import LocalServer
from sqlalchemy import func, select

from monitor._types import Article, MatchResult
from monitor.db import models as m
from monitor.db.store import ArticleWrite, Store

STORY = "summit"


def delivery_states(store: Store, alert_id: str) -> dict[str, int]:
    """How many of the alert's articles are in each state (pending, sending, sent, failed), read
    straight from the table."""
    stmt = (select(m.AlertDelivery.state, func.count()).where(m.AlertDelivery.alert_id == alert_id)
            .group_by(m.AlertDelivery.state))
    with store.transaction() as conn:
        return {state: count for state, count in conn.execute(stmt)}


def digest_runs(store: Store, digest_id: str) -> list[tuple[datetime, str, int]]:
    """(scheduled time, state, attempts) of every run of `digest_id`, oldest first, read straight from the table."""
    stmt = (select(m.DigestRun.scheduled_for, m.DigestRun.state, m.DigestRun.attempts)
            .where(m.DigestRun.digest_id == digest_id).order_by(m.DigestRun.scheduled_for))
    with store.transaction() as conn:
        return [(when, state, attempts) for when, state, attempts in conn.execute(stmt)]
STORIES = [SimpleNamespace(id=STORY, title="Trump–Kim summit", enabled=True),
           SimpleNamespace(id="other", title="Another story", enabled=True)]


class Receiver:
    """A webhook receiver on a real local HTTP server: answers `statuses` in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        self.server = LocalServer({"/hook/T0KEN-SECRET": self._handle})
        self.url = self.server.url("/hook/T0KEN-SECRET")

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        with self._lock:
            self.bodies.append(body)
            self.content_types.append(h.headers.get("Content-Type", ""))
            status = self.statuses.pop(0) if self.statuses else 200
        h.send_response(status)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"no" if status >= 400 else b"ok")

    def json(self, i: int) -> dict[str, Any]:
        return json.loads(self.bodies[i])

    def close(self) -> None:
        self.server.close()


def add_match(store: Store, n: int, at: datetime, *, story: str = STORY, score: float = 0.9,
              title: str | None = None) -> None:
    url = f"https://news.example/2026/11/25/story-{n}"
    article = Article(url=url, final_url=url, feed_url="https://news.example/rss", title=title or f"Summit story {n}",
                      body=f"Kim Jong Un and Donald Trump met, report number {n}.\n\nMore text {n}.",
                      fetched_at=at, published=at - timedelta(minutes=5), outlet="Example News", lang="en")
    result = MatchResult(story_id=story, matched=True, score=score, evidence=("title: summit, Kim Jong Un",),
                         rule_versions={"title": "1"}, best_passage=f"Kim Jong Un and Donald Trump met, report {n}.")
    store.store_articles([ArticleWrite(article, [result], [])], at)
