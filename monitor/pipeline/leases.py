"""Where a pass writes each feed's outcome (`FeedDecision`): straight to the store, or, when several
daemons share the database, fenced by the pass's claim on the feed so that a daemon whose lease
was taken over drops its result instead.

A `Leases` belongs to one pass: it holds that pass's claims, renews them while the pass works,
and hands back those of feeds the pass left unfinished. Outcomes wait until `flush`, which writes
them all in one transaction.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from monitor.db.leases import Claim, Release, release_many, renew
from monitor.db.store import Store
from monitor.pipeline.decide import FeedDecision

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True, slots=True)
class _Pending:
    decision: FeedDecision
    then: Callable[[], None]        # what follows once the outcome is written


class Leases:
    """A pass's feed outcomes on their way to the database, under the pass's claims (if any)."""

    def __init__(self, store: Store, claims: Sequence[Claim], lease_seconds: float) -> None:
        self.store, self.lease_seconds = store, float(lease_seconds)
        self.leased = bool(claims)
        self.held: dict[int, Claim] = {c.feed.id: c for c in claims}
        self.renewed = time.monotonic()
        self.pending: list[_Pending] = []
        self.pending_since: float | None = None

    def record(self, decision: FeedDecision, then: Callable[[], None] = lambda: None) -> None:
        """Queue the feed's outcome; `then` runs once it is written, never when the lease was lost
        (nothing is written then)."""
        self.pending.append(_Pending(decision, then))
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    def flush(self) -> None:
        pending, self.pending, self.pending_since = self.pending, [], None
        if not pending:
            return
        written: list[bool | None]
        try:
            written = list(self._write(pending))
        except Exception as e:
            # One bad result (a redirect to an unstorable address, say) must not cost the others.
            log.warning("storing %d feed results together failed (%s); storing them one by one", len(pending), e)
            written = [self._write_one(item) for item in pending]
        for item, ok in zip(pending, written, strict=True):
            url = item.decision.feed.url
            if ok is None:
                continue        # failed and logged: the feed is checked again next time
            if not ok:
                log.warning("%s: lease lost to another daemon; its result of this check is dropped", url)
                continue
            try:
                item.then()
            except Exception:
                log.exception("unexpected error after recording %s", url)

    def _write_one(self, item: _Pending) -> bool | None:
        try:
            return self._write([item])[0]
        except Exception:
            log.exception("storing the result of checking %s failed", item.decision.feed.url)
            return None

    def _write(self, pending: list[_Pending]) -> list[bool]:
        decisions = [item.decision for item in pending]
        if not self.leased:
            self.store.record_feed_results(
                [d.result for d in decisions],
                then=lambda conn: self.store.write_poll_states(conn, [
                    (d.feed.id, d.poll, d.result.fetched_at) for d in decisions if d.poll is not None]))
            for d in decisions:
                if d.enabled is False:
                    self.store.set_feed_enabled(d.feed.url, False)
            return [True] * len(decisions)
        claims = [self.held.pop(d.feed.id, None) for d in decisions]
        released = [(d, claim) for d, claim in zip(decisions, claims, strict=True) if claim is not None]

        def polls(conn: Connection, held: list[bool]) -> None:
            self.store.write_poll_states(conn, [(d.feed.id, d.poll, d.result.fetched_at)
                                                 for (d, _claim), ok in zip(released, held, strict=True)
                                                 if ok and d.poll is not None])

        releases = [Release(claim, d.result, d.enabled) for d, claim in released]
        outcomes = iter(release_many(self.store, releases, then=polls) if releases else [])
        return [claim is not None and next(outcomes) for claim in claims]

    def maybe_renew(self) -> None:
        """Renew the leases a third of the way through, so long work keeps its feeds."""
        if not self.held or time.monotonic() - self.renewed < self.lease_seconds / 3:
            return
        self.renewed = time.monotonic()
        kept = renew(self.store, list(self.held.values()), datetime.now(UTC), self.lease_seconds)
        lost = set(self.held) - {c.feed.id for c in kept}
        for feed_id in lost:
            log.warning("%s: lease expired and was taken over", self.held[feed_id].feed.url)
        self.held = {c.feed.id: c for c in kept}

    def hand_back_unfinished(self) -> None:
        if self.held:
            release_many(self.store, [Release(claim) for claim in self.held.values()])
            self.held = {}

