"""What the polling policy remembers about each feed (table feed_polling), and where feeds
moved (table feed_moves).

`monitor.schedule.next_check` decides; this module only reads and writes its `PollState`.
A feed without a row has the empty state: never checked successfully, configured interval.
A feed that answered 301/308 is stored under its new URL; the move is remembered so that a
configuration still naming the old URL does not bring the old feed back.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from monitor.db import models as m
from monitor.db.engine import dialect_insert, transaction
from monitor.db.store import Store
from monitor.schedule import PollState

__all__ = ["load_poll_states", "moved_to", "record_move", "save_poll_state", "write_poll_state", "write_poll_states"]

_CHUNK = 500
_MAX_MOVES = 10     # a chain of moves longer than this (or a cycle) is not followed


def load_poll_states(store: Store, feed_ids: Iterable[int]) -> dict[int, PollState]:
    """The stored poll state of each of `feed_ids` that has one."""
    ids = list(dict.fromkeys(feed_ids))
    states: dict[int, PollState] = {}
    with transaction(store.engine) as conn:
        for start in range(0, len(ids), _CHUNK):
            stmt = select(m.FeedPolling).where(m.FeedPolling.feed_id.in_(ids[start:start + _CHUNK]))
            for row in conn.execute(stmt):
                states[row.feed_id] = PollState(
                    interval=row.interval_seconds, activity=row.activity, checks=row.checks,
                    unchanged_since=row.unchanged_since, unchanged_checks=row.unchanged_checks,
                    revalidate=row.revalidate)
    return states


def save_poll_state(store: Store, feed_id: int, state: PollState, at: datetime | None = None) -> None:
    """Store `state` as the feed's poll state (insert or replace). A removed feed is ignored."""
    with transaction(store.engine) as conn:
        write_poll_state(conn, store, feed_id, state, at)


def write_poll_state(conn: Connection, store: Store, feed_id: int, state: PollState,
                     at: datetime | None = None) -> None:
    """`save_poll_state` inside the caller's transaction `conn` (with the feed's result, say)."""
    write_poll_states(conn, store, [(feed_id, state, at)])


def write_poll_states(conn: Connection, store: Store,
                      states: Sequence[tuple[int, PollState, datetime | None]]) -> None:
    """The poll states of many feeds, (feed id, state, when) each, inside the caller's transaction:
    one query for the feeds that still exist and one statement for all of them."""
    if not states:
        return
    # A feed may have been removed while it was being checked: then there is nothing to remember.
    ids = list(dict.fromkeys(feed_id for feed_id, _state, _at in states))
    present: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        present.update(conn.scalars(select(m.Feed.id).where(m.Feed.id.in_(ids[start:start + _CHUNK]))))
    now = datetime.now(UTC)
    rows = {feed_id: {"feed_id": feed_id, **_poll_values(state, at or now)}
            for feed_id, state, at in states if feed_id in present}
    if not rows:
        return
    insert = dialect_insert(store.engine)(m.FeedPolling)
    stmt = insert.on_conflict_do_update(index_elements=["feed_id"],
                                        set_={name: insert.excluded[name] for name in _POLL_COLUMNS})
    conn.execute(stmt, list(rows.values()))


_POLL_COLUMNS = ("interval_seconds", "activity", "checks", "unchanged_since", "unchanged_checks", "revalidate",
                 "updated_at")


def _poll_values(state: PollState, at: datetime) -> Mapping[str, object]:
    return {"interval_seconds": state.interval, "activity": state.activity, "checks": state.checks,
            "unchanged_since": state.unchanged_since, "unchanged_checks": state.unchanged_checks,
            "revalidate": state.revalidate, "updated_at": at}


def record_move(store: Store, old_url: str, new_url: str, at: datetime | None = None) -> None:
    """Remember that the feed at `old_url` moved permanently to `new_url`."""
    if old_url == new_url:
        return
    values = {"new_url": new_url, "moved_at": at or datetime.now(UTC)}
    insert = dialect_insert(store.engine)
    stmt = insert(m.FeedMove).values(old_url=old_url, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["old_url"], set_=values)
    with transaction(store.engine) as conn:
        conn.execute(stmt)


def moved_to(store: Store, urls: Iterable[str]) -> dict[str, str]:
    """For each of `urls` that moved, the URL it moved to in the end (chains of moves followed)."""
    with transaction(store.engine) as conn:
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


