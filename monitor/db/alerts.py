"""Delivery state of alerts and scheduled digests: what is owed, being sent, sent or given up.

Every daemon sharing the database sees the same state, and each decision about who sends is
one conditional write that only one daemon can win: an alert's send slot is taken by moving
`alert_states.next_send_at` forward only where it is due, a scheduled digest by inserting its
unique (digest, time) row. Articles are claimed (`sending`) in the same transaction as the
slot and marked `sent` after the message went, so nothing is ever sent twice; a send whose
process died stays unsent rather than risk a duplicate (it is marked failed, interrupted).
"""
from __future__ import annotations

import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, exists, func, select, update

from monitor._types import StoredMatch
from monitor.db import models as m
from monitor.db.articles import STORED_MATCH_COLUMNS, stored_match
from monitor.db.store import Store

__all__ = ["AlertClaim", "AlertLedger"]

_CHUNK = 500
_INTERRUPTED = "interrupted while sending (the process stopped); not resent, so that nothing arrives twice"


@dataclass(frozen=True, slots=True)
class AlertClaim:
    """The articles one daemon is sending in one message; `token` marks them in the database."""

    alert_id: str
    token: str
    matches: tuple[StoredMatch, ...]
    failures: int                    # failed attempts in a row before this one


class AlertLedger:
    """Reads and writes the delivery tables of a `Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- alerts

    def register(self, alert_id: str, story_id: str, now: datetime) -> None:
        """Start remembering `alert_id`: matches made from `now` on are its to send. Known ids are kept."""
        row = {"alert_id": alert_id, "story_id": story_id, "created_at": now, "next_send_at": now, "failures": 0}
        with self._transaction() as conn:
            conn.execute(self._store.insert(m.AlertState).values(row).on_conflict_do_nothing(index_elements=["alert_id"]))

    def enqueue(self, alert_id: str, min_score: float, now: datetime) -> int:
        """Record as owed the new matches of the alert's story not recorded yet; return how many."""
        with self._transaction() as conn:
            state = conn.execute(select(m.AlertState.story_id, m.AlertState.created_at)
                                 .where(m.AlertState.alert_id == alert_id)).one_or_none()
            if state is None:
                return 0
            owed = (
                select(m.Match.article_id)
                .where(m.Match.story_id == state.story_id, m.Match.matched_at >= state.created_at,
                       m.Match.score >= min_score,
                       ~exists().where(m.AlertDelivery.alert_id == alert_id,
                                       m.AlertDelivery.article_id == m.Match.article_id))
                .order_by(m.Match.id)
            )
            added = 0
            article_ids = list(conn.scalars(owed))
            for start in range(0, len(article_ids), _CHUNK):
                rows = [{"alert_id": alert_id, "article_id": article_id, "state": "pending", "created_at": now}
                        for article_id in article_ids[start:start + _CHUNK]]
                stmt = (self._store.insert(m.AlertDelivery).values(rows)
                        .on_conflict_do_nothing(index_elements=["alert_id", "article_id"])
                        .returning(m.AlertDelivery.id))
                added += len(conn.execute(stmt).all())
        return added

    def pending(self, alert_id: str) -> int:
        """Articles waiting for the alert's next message."""
        stmt = select(func.count()).where(m.AlertDelivery.alert_id == alert_id, m.AlertDelivery.state == "pending")
        with self._transaction() as conn:
            return conn.scalar(stmt) or 0

    def claim(self, alert_id: str, now: datetime, hold_until: datetime) -> AlertClaim | None:
        """Take the alert's send slot if it is due at `now`, with every article it owes.

        The slot is held until `hold_until` (longer than any send can take); None when the
        slot is not due, another daemon holds it, or nothing is owed.
        """
        token = secrets.token_hex(16)
        with self._transaction() as conn:
            # The write comes first so that it waits for, rather than races, another claimer.
            slot = conn.execute(
                update(m.AlertState)
                .where(m.AlertState.alert_id == alert_id, m.AlertState.next_send_at <= now)
                .values(next_send_at=hold_until)
                .returning(m.AlertState.failures, m.AlertState.story_id)).one_or_none()
            if slot is None:
                return None
            # Still `sending` although the slot was free: the daemon that claimed them died.
            conn.execute(update(m.AlertDelivery)
                         .where(m.AlertDelivery.alert_id == alert_id, m.AlertDelivery.state == "sending")
                         .values(state="failed", error=_INTERRUPTED))
            article_ids = list(conn.scalars(
                update(m.AlertDelivery)
                .where(m.AlertDelivery.alert_id == alert_id, m.AlertDelivery.state == "pending")
                .values(state="sending", batch=token, claimed_at=now)
                .returning(m.AlertDelivery.article_id)))
            if not article_ids:
                conn.execute(update(m.AlertState).where(m.AlertState.alert_id == alert_id).values(next_send_at=now))
                return None
            matches = _matches(conn, slot.story_id, article_ids)
        return AlertClaim(alert_id=alert_id, token=token, matches=matches, failures=slot.failures)

    def mark_sent(self, claim: AlertClaim, now: datetime, next_send_at: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(update(m.AlertDelivery).where(m.AlertDelivery.batch == claim.token)
                         .values(state="sent", sent_at=now, error=None))
            conn.execute(update(m.AlertState).where(m.AlertState.alert_id == claim.alert_id)
                         .values(failures=0, last_sent_at=now, last_error=None, next_send_at=next_send_at))

    def mark_failed(self, claim: AlertClaim, error: str, next_send_at: datetime, *, give_up: bool) -> None:
        """Put the claimed articles back for a retry at `next_send_at`, or give them up."""
        articles = {"state": "failed", "error": error} if give_up else {"state": "pending", "batch": None,
                                                                        "error": error}
        with self._transaction() as conn:
            conn.execute(update(m.AlertDelivery)
                         .where(m.AlertDelivery.batch == claim.token, m.AlertDelivery.state == "sending")
                         .values(**articles))
            conn.execute(update(m.AlertState).where(m.AlertState.alert_id == claim.alert_id)
                         .values(failures=0 if give_up else claim.failures + 1, last_error=error,
                                 next_send_at=next_send_at))

    # -- scheduled digests

    def claim_run(self, digest_id: str, scheduled_for: datetime, now: datetime) -> bool:
        """True for exactly one caller per (digest, scheduled time): the one whose row went in."""
        row = {"digest_id": digest_id, "scheduled_for": scheduled_for, "state": "sending", "attempts": 1,
               "claimed_at": now}
        stmt = (self._store.insert(m.DigestRun).values(row)
                .on_conflict_do_nothing(index_elements=["digest_id", "scheduled_for"])
                .returning(m.DigestRun.id))
        with self._transaction() as conn:
            return conn.scalar(stmt) is not None

    def claim_retry(self, digest_id: str, now: datetime) -> tuple[datetime, int] | None:
        """Take the oldest failed run of `digest_id` due for a retry: (scheduled time, attempt number)."""
        with self._transaction() as conn:
            run_id = conn.scalar(
                select(m.DigestRun.id)
                .where(m.DigestRun.digest_id == digest_id, m.DigestRun.state == "failed",
                       m.DigestRun.next_attempt_at <= now)
                .order_by(m.DigestRun.scheduled_for).limit(1))
            if run_id is None:
                return None
            row = conn.execute(
                update(m.DigestRun).where(m.DigestRun.id == run_id, m.DigestRun.state == "failed")
                .values(state="sending", attempts=m.DigestRun.attempts + 1, claimed_at=now)
                .returning(m.DigestRun.scheduled_for, m.DigestRun.attempts)).one_or_none()
        return (row.scheduled_for, row.attempts) if row is not None else None

    def finish_run(self, digest_id: str, scheduled_for: datetime, now: datetime, *, error: str | None = None,
                   retry_at: datetime | None = None) -> None:
        """Record a run's outcome: sent (no error), failed to be retried at `retry_at`, or given up."""
        state = "sent" if error is None else "failed" if retry_at is not None else "given-up"
        with self._transaction() as conn:
            conn.execute(update(m.DigestRun)
                         .where(m.DigestRun.digest_id == digest_id, m.DigestRun.scheduled_for == scheduled_for)
                         .values(state=state, finished_at=now, error=error, next_attempt_at=retry_at))

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self._store.transaction()


def _matches(conn: Connection, story_id: str, article_ids: list[int]) -> tuple[StoredMatch, ...]:
    stmt = (
        select(*STORED_MATCH_COLUMNS)
        .join(m.Article, m.Match.article_id == m.Article.id)
        .where(m.Match.story_id == story_id)
    )
    found: list[StoredMatch] = []
    for start in range(0, len(article_ids), _CHUNK):
        chunk = article_ids[start:start + _CHUNK]
        found += [stored_match(row) for row in conn.execute(stmt.where(m.Match.article_id.in_(chunk)))]
    return tuple(found)
