"""Feeds and polling: the feeds table, what the polling policy remembers about each feed (table
feed_polling) and where feeds moved (table feed_moves). `FeedStore` is part of `Store`.

`monitor.schedule.next_check` decides; this module only reads and writes its `PollState`.
A feed without a poll row has the empty state: never checked successfully, configured interval.
A feed that answered 301/308 is stored under its new URL; the move is remembered so that a
configuration still naming the old URL does not bring the old feed back.

The mappings of a feed live here once: row -> `FeedState` (`feed_state`), a check's result ->
column values (`feed_result_values`), and the move to a redirect target (`move_feed`), which the
leases (`monitor.db.leases`) use as well.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from monitor._types import FeedState
from monitor.db import models as m
from monitor.db.base import MAX_INDEXED_BYTES, StoreBase, check_indexable, chunks, indexed_size, now
from monitor.schedule import PollState

__all__ = ["FeedResult", "FeedStore", "feed_result_values", "feed_state", "move_feed"]

log = logging.getLogger("monitor.db")

_MAX_MOVES = 10     # a chain of moves longer than this (or a cycle) is not followed
_FEED_FIELDS = tuple(f.name for f in dataclasses.fields(FeedState))
_FEW_VALUES = ("source", "last_status")


@dataclass(frozen=True, slots=True)
class FeedResult:
    """The outcome of one feed check, as `Store.record_feed_results` and `leases.release_many` store it."""

    feed_id: int
    fetched_at: datetime
    status: str
    error: str | None
    error_count: int
    next_due_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    new_url: str | None = None     # a permanent redirect: the feed moves there (see `move_feed`)


def feed_state(row: Row[*tuple[Any, ...]]) -> FeedState:
    """A feeds row as the rest of the monitor reads it."""
    values = {name: getattr(row, name) for name in _FEED_FIELDS}
    # A handful of words over every row: one string each, not a copy a row (some 10 MiB at 100,000 feeds).
    for name in _FEW_VALUES:
        if values[name] is not None:
            values[name] = sys.intern(values[name])
    return FeedState(**values)


def feed_result_values(result: FeedResult) -> dict[str, Any]:
    """The feed columns a check's result writes; None for etag, last_modified or title keeps the stored value."""
    values: dict[str, Any] = {
        "last_fetched_at": result.fetched_at,
        "last_status": result.status,
        "last_error": result.error,
        "error_count": result.error_count,
        "next_due_at": result.next_due_at,
    }
    kept_unless_given = {"etag": result.etag, "last_modified": result.last_modified, "title": result.title}
    values.update({name: value for name, value in kept_unless_given.items() if value is not None})
    return values


def move_feed(conn: Connection, feed_id: int, new_url: str) -> bool:
    """Store the feed under `new_url` (its permanent redirect) inside `conn`'s transaction; return
    whether it moved.

    It stays where it is when another feed already has `new_url`, and when `new_url` is too long
    to index: that refusal is logged (naming the feed and the size) and the rest of the check's
    result is stored as usual, so one hostile redirect neither fails a pass nor goes unnoticed.
    """
    size = indexed_size(new_url)
    if size > MAX_INDEXED_BYTES:
        url = conn.scalar(select(m.Feed.url).where(m.Feed.id == feed_id))
        log.warning("%s: not moved to its permanent redirect, whose address is too long to store "
                    "(%d bytes, limit %d): %s...; the feed stays at its current address",
                    url, size, MAX_INDEXED_BYTES, new_url[:120])
        return False
    other = aliased(m.Feed)
    taken = exists(select(other.id).where(other.url == new_url))
    return conn.execute(update(m.Feed).where(m.Feed.id == feed_id, ~taken).values(url=new_url)).rowcount > 0


def _new_feed(url: str, title: str | None, source: str, interval_seconds: int | None, at: datetime) -> dict[str, Any]:
    check_indexable(url, "feed URL")
    return {
        "url": url,
        "title": title,
        "source": source,
        "enabled": True,
        "interval_seconds": interval_seconds,
        "error_count": 0,
        "created_at": at,
    }


_POLL_COLUMNS = ("interval_seconds", "activity", "checks", "unchanged_since", "unchanged_checks", "revalidate",
                 "updated_at")


def _poll_values(state: PollState, at: datetime) -> Mapping[str, object]:
    return {"interval_seconds": state.interval, "activity": state.activity, "checks": state.checks,
            "unchanged_since": state.unchanged_since, "unchanged_checks": state.unchanged_checks,
            "revalidate": state.revalidate, "updated_at": at}


def _poll_state(row: Row[*tuple[Any, ...]]) -> PollState:
    return PollState(interval=row.interval_seconds, activity=row.activity, checks=row.checks,
                     unchanged_since=row.unchanged_since, unchanged_checks=row.unchanged_checks,
                     revalidate=row.revalidate)


class FeedStore(StoreBase):
    """The Store's feeds, their check results, poll states and moves."""

    # -- feeds

    def sync_feeds(self, feeds: Sequence[tuple[str, str | None, int | None]], source: str = "config") -> int:
        """Add the (url, title, interval_seconds) feeds not stored yet; return how many were added.

        Never deletes, and leaves stored feeds as they are.
        """
        at = now()
        # One statement with the rows as parameters (executemany): a multi-row VALUES built per
        # chunk is compiled anew each time, which made adding 100,000 feeds take minutes.
        stmt = self.insert(m.Feed).on_conflict_do_nothing(index_elements=["url"]).returning(m.Feed.id)
        added = 0
        # A chunk at a time, lookup and insert: the stored URLs of 100,000 feeds looked up at once
        # raised the process's memory by some 20 MiB for good (freed, but not given back).
        for chunk in chunks(feeds, 5000):
            # Most of the feeds of a configuration are stored already: look them up (a quick
            # indexed read) rather than send every row in an insert that ignores them.
            stored = self._stored_feed_urls([url for url, _title, _interval in chunk])
            rows = [_new_feed(url, title, source, interval, at) for url, title, interval in chunk
                    if m.clean_text(url) not in stored]
            if rows:
                with self.transaction() as conn:
                    added += len(conn.execute(stmt, rows).all())
        return added

    def _stored_feed_urls(self, urls: Sequence[str]) -> set[str]:
        """The stored feed URLs among `urls` (as stored: SafeText-cleaned)."""
        found: set[str] = set()
        with self.transaction() as conn:
            for chunk in chunks(list(dict.fromkeys(m.clean_text(url) for url in urls))):
                found.update(conn.scalars(select(m.Feed.url).where(m.Feed.url.in_(chunk))))
        return found

    def add_feed(
        self, url: str, *, title: str | None = None, source: str = "cli", interval_seconds: int | None = None,
        enabled: bool = True,
    ) -> FeedState:
        """Add a feed; when `url` is already stored, return the stored feed unchanged."""
        row = _new_feed(url, title, source, interval_seconds, now()) | {"enabled": enabled}
        with self.transaction() as conn:
            conn.execute(self.insert(m.Feed).values(row).on_conflict_do_nothing(index_elements=["url"]))
            return feed_state(conn.execute(select(m.Feed).where(m.Feed.url == url)).one())

    def remove_feed(self, url: str) -> bool:
        """Delete the feed and its seen-entry records; its articles and matches stay."""
        with self.transaction() as conn:
            return conn.execute(delete(m.Feed).where(m.Feed.url == url)).rowcount > 0

    def get_feed(self, url: str) -> FeedState | None:
        with self.transaction() as conn:
            row = conn.execute(select(m.Feed).where(m.Feed.url == url)).one_or_none()
        return feed_state(row) if row is not None else None

    def list_feeds(self) -> list[FeedState]:
        with self.transaction() as conn:
            return [feed_state(row) for row in conn.execute(select(m.Feed).order_by(m.Feed.id))]

    def count_feeds(self) -> int:
        """How many feeds are stored, enabled or not."""
        with self.transaction() as conn:
            return int(conn.scalars(select(func.count()).select_from(m.Feed)).one())

    def due_feeds(self, at: datetime, limit: int | None = None) -> list[FeedState]:
        """Enabled feeds whose next fetch is due at `at`, the longest-waiting first."""
        stmt = (
            select(m.Feed)
            .where(m.Feed.enabled, or_(m.Feed.next_due_at.is_(None), m.Feed.next_due_at <= at))
            .order_by(m.Feed.next_due_at.asc().nulls_first(), m.Feed.id)
            .limit(limit)
        )
        with self.transaction() as conn:
            return [feed_state(row) for row in conn.execute(stmt)]

    def set_feed_enabled(self, url: str, enabled: bool) -> bool:
        """Enable or disable a feed; False when no feed has `url`."""
        with self.transaction() as conn:
            return conn.execute(update(m.Feed).where(m.Feed.url == url).values(enabled=enabled)).rowcount > 0

    # -- check results

    def record_feed_result(self, result: FeedResult) -> None:
        """Store the outcome of one check (see `record_feed_results`)."""
        self.record_feed_results([result])

    def record_feed_results(self, results: Sequence[FeedResult],
                            then: Callable[[Connection], None] | None = None) -> None:
        """Store the outcomes of checks in one transaction (a pass over many unchanged feeds then
        costs one commit, not one per feed); `then` writes more in the same transaction.

        A result's `new_url` (a permanent redirect) moves the feed there (`move_feed`).
        """
        if not results and then is None:
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for result in results:
            values = feed_result_values(result)
            groups.setdefault(tuple(values), []).append({"feed_id": result.feed_id, **values})
        with self.transaction() as conn:
            # One executemany per set of columns written (304s write the same ones).
            for columns, rows in groups.items():
                stmt = (update(m.Feed).where(m.Feed.id == bindparam("feed_id"))
                        .values({column: bindparam(f"new_{column}") for column in columns}))
                conn.execute(stmt, [{"feed_id": row["feed_id"], **{f"new_{c}": row[c] for c in columns}}
                                    for row in rows])
            for result in results:
                if result.new_url is not None:
                    move_feed(conn, result.feed_id, result.new_url)
            if then is not None:
                then(conn)

    # -- poll states

    def load_poll_states(self, feed_ids: Iterable[int]) -> dict[int, PollState]:
        """The stored poll state of each of `feed_ids` that has one."""
        ids = list(dict.fromkeys(feed_ids))
        states: dict[int, PollState] = {}
        with self.transaction() as conn:
            for chunk in chunks(ids):
                for row in conn.execute(select(m.FeedPolling).where(m.FeedPolling.feed_id.in_(chunk))):
                    states[row.feed_id] = _poll_state(row)
        return states

    def write_poll_states(self, conn: Connection, states: Sequence[tuple[int, PollState, datetime | None]]) -> None:
        """The poll states of many feeds, (feed id, state, when) each, inside the caller's transaction
        `conn` (with the feeds' results): one query for the feeds that still exist and one statement
        for all of them. A feed removed meanwhile is ignored."""
        if not states:
            return
        # A feed may have been removed while it was being checked: then there is nothing to remember.
        ids = list(dict.fromkeys(feed_id for feed_id, _state, _at in states))
        present: set[int] = set()
        for chunk in chunks(ids):
            present.update(conn.scalars(select(m.Feed.id).where(m.Feed.id.in_(chunk))))
        at_now = datetime.now(UTC)
        rows = {feed_id: {"feed_id": feed_id, **_poll_values(state, at or at_now)}
                for feed_id, state, at in states if feed_id in present}
        if not rows:
            return
        insert = self.insert(m.FeedPolling)
        stmt = insert.on_conflict_do_update(index_elements=["feed_id"],
                                            set_={name: insert.excluded[name] for name in _POLL_COLUMNS})
        conn.execute(stmt, list(rows.values()))

    # -- moves

    def record_move(self, old_url: str, new_url: str, at: datetime | None = None) -> None:
        """Remember that the feed at `old_url` moved permanently to `new_url`."""
        if old_url == new_url:
            return
        values = {"new_url": new_url, "moved_at": at or datetime.now(UTC)}
        stmt = self.insert(m.FeedMove).values(old_url=old_url, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["old_url"], set_=values)
        with self.transaction() as conn:
            conn.execute(stmt)

    def moved_to(self, urls: Iterable[str]) -> dict[str, str]:
        """For each of `urls` that moved, the URL it moved to in the end (chains of moves followed)."""
        with self.transaction() as conn:
            rows = conn.execute(select(m.FeedMove.old_url, m.FeedMove.new_url))
            moves: dict[str, str] = {old: new for old, new in rows}
        found: dict[str, str] = {}
        for url in urls:
            target, seen = moves.get(url), {url}
            while target is not None and target in moves and target not in seen and len(seen) < _MAX_MOVES:
                seen.add(target)
                target = moves[target]
            if target is not None and target != url:
                found[url] = target
        return found
