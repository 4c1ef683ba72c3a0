"""The inbox: entries other aggregators handed over, kept until their articles are stored.

`put` is one short insert (cheap enough for reader's update call or a webhook request). A
worker `take`s a batch of rows under a time-limited claim, processes them, and `done` deletes
them; a worker that dies leaves its claim to expire, and the rows are taken again. Processing
is idempotent (entries already seen are skipped), so taking a row twice stores nothing twice.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from monitor._types import FeedEntry
from monitor.db import models as m
from monitor.db.store import Store

# Rows whose processing failed this many times stay in the inbox (nothing is lost) but are
# not taken again until an operator looks; `monitor serve`'s health endpoint counts them.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class InboxBatch:
    id: int
    origin: str
    feed_url: str
    feed_title: str | None
    entries: tuple[FeedEntry, ...]
    attempts: int


def put(store: Store, origin: str, feed_url: str, entries: Sequence[FeedEntry], *, feed_title: str | None,
        now: datetime) -> int:
    """Queue `entries` of `feed_url` (one row); return the row's id."""
    row = {"origin": origin, "feed_url": feed_url, "feed_title": feed_title,
           "entries": json.dumps([_entry_dict(e) for e in entries]), "received_at": now, "attempts": 0}
    with store.transaction() as conn:
        return int(conn.execute(insert(m.InboxItem).values(row).returning(m.InboxItem.id)).scalar_one())


def take(store: Store, now: datetime, *, limit: int, claim_seconds: float) -> list[InboxBatch]:
    """Claim up to `limit` rows nobody is working on, the oldest first."""
    free = or_(m.InboxItem.claimed_until.is_(None), m.InboxItem.claimed_until < now)
    pick = (select(m.InboxItem.id).where(free, m.InboxItem.attempts < MAX_ATTEMPTS)
            .order_by(m.InboxItem.id).limit(limit))
    if store.dialect_name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    with store.transaction() as conn:
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return []
        conn.execute(update(m.InboxItem).where(m.InboxItem.id.in_(ids))
                     .values(claimed_until=now + timedelta(seconds=claim_seconds), attempts=m.InboxItem.attempts + 1))
        rows = conn.execute(select(m.InboxItem).where(m.InboxItem.id.in_(ids)).order_by(m.InboxItem.id)).all()
        return [InboxBatch(r.id, r.origin, r.feed_url, r.feed_title,
                           tuple(_entry(d) for d in json.loads(r.entries)), r.attempts) for r in rows]


def done(store: Store, ids: Sequence[int]) -> None:
    """Delete processed rows."""
    if ids:
        with store.transaction() as conn:
            conn.execute(delete(m.InboxItem).where(m.InboxItem.id.in_(list(ids))))


def release(store: Store, ids: Sequence[int]) -> None:
    """Hand claimed rows back unprocessed (a worker stopping), to be taken again at once."""
    if ids:
        with store.transaction() as conn:
            conn.execute(update(m.InboxItem).where(m.InboxItem.id.in_(list(ids)))
                         .values(claimed_until=None, attempts=m.InboxItem.attempts - 1))


def counts(store: Store) -> tuple[int, int]:
    """(rows waiting, rows given up after MAX_ATTEMPTS failures)."""
    with store.transaction() as conn:
        waiting = conn.execute(select(func.count()).where(m.InboxItem.attempts < MAX_ATTEMPTS)
                               .select_from(m.InboxItem)).scalar_one()
        stuck = conn.execute(select(func.count()).where(m.InboxItem.attempts >= MAX_ATTEMPTS)
                             .select_from(m.InboxItem)).scalar_one()
    return int(waiting), int(stuck)


def _entry_dict(e: FeedEntry) -> dict[str, Any]:
    return {"key": e.key, "link": e.link, "title": e.title, "summary": e.summary, "content_html": e.content_html,
            "author": e.author, "published": e.published.isoformat() if e.published else None}


def _entry(d: dict[str, Any]) -> FeedEntry:
    published = datetime.fromisoformat(d["published"]) if d.get("published") else None
    return FeedEntry(key=d["key"], link=d.get("link"), title=d.get("title") or "", summary=d.get("summary") or "",
                     content_html=d.get("content_html"), author=d.get("author") or "", published=published)
