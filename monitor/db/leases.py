"""Leases: several daemons share one database without doing any work twice or leaving any undone.

A daemon *claims* due feeds: each claimed feed gets the daemon as `lease_owner`, an expiry, and a
`lease_token` one higher than before. On PostgreSQL the claim reads with `FOR UPDATE SKIP LOCKED`,
so daemons claiming at the same moment get disjoint feeds without waiting for each other.
While working the daemon *renews* its leases; when a feed is done it *releases* the lease and
stores the feed's result in the same statement, fenced by the token: if the lease expired and
another daemon claimed the feed meanwhile, the token has moved on, nothing is written and the
caller drops its result. A daemon that crashed simply stops renewing; its feeds are claimable
again once their leases expire.

Jobs that must run once across all daemons (a scheduled digest, a clean-up) use a unique run row
(`run_once_per`) or a PostgreSQL advisory lock (`advisory_lock`).

SQLite serves one daemon: `register_daemon` holds a lock file next to the database and refuses a
second daemon. Times (`now`) come from the caller's clock: daemons on several machines need
synchronised clocks (NTP), and leases far longer than the clocks' disagreement.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, func, or_, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from monitor._types import FeedState
from monitor.db import models as m
from monitor.db.base import chunks
from monitor.db.engine import describe_error, masked_url
from monitor.db.feeds import FeedResult, feed_result_values, feed_state, move_feed
from monitor.db.store import Store
from monitor.exceptions import StorageError

log = logging.getLogger("monitor.daemon")

__all__ = ["Claim", "Release", "advisory_lock", "claim_due_feeds", "new_owner", "register_daemon",
           "release_many", "renew", "run_once_per"]

_MAX_NAME = 200          # owner, job and key columns are String(200)


@dataclass(frozen=True, slots=True)
class Claim:
    """A feed leased to `owner` until `expires_at`; `token` fences what the owner writes back."""

    feed: FeedState
    owner: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Release:
    """A lease given back, with what the check found (`result`), if it was done.

    Without a result only the lease is given back (work abandoned, e.g. on shutdown) and the feed
    stays due for whoever claims it next. `enabled=False` disables the feed.
    """

    claim: Claim
    result: FeedResult | None = None
    enabled: bool | None = None


def new_owner() -> str:
    """A name for this daemon that no other daemon, here or on another machine, will have."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def claim_due_feeds(store: Store, owner: str, now: datetime, limit: int, lease_seconds: float, *,
                    due_only: bool = True) -> list[Claim]:
    """Lease up to `limit` enabled, due feeds that nobody holds a live lease on; the longest-waiting first.

    A feed is due when its `next_due_at` is unset or not after `now`; `due_only=False` claims
    every enabled feed whatever its schedule (`monitor run --once`). Feeds whose lease expired are
    claimable again: that is how a crashed daemon's work is taken over.
    """
    _check_name(owner, "lease owner")
    if limit <= 0:
        return []
    expires_at = now + timedelta(seconds=lease_seconds)
    free = or_(m.Feed.lease_expires_at.is_(None), m.Feed.lease_expires_at <= now)
    pick = select(m.Feed.id).where(m.Feed.enabled, free)
    if due_only:
        # Never-checked feeds first, then the due ones by due time, in two statements: each reads
        # the next_due_at index in order, where one ORDER BY next_due_at NULLS FIRST made
        # PostgreSQL (whose index keeps NULLs last) sort every due feed for each batch.
        picks = [pick.where(m.Feed.next_due_at.is_(None)).order_by(m.Feed.id),
                 pick.where(m.Feed.next_due_at <= now).order_by(m.Feed.next_due_at, m.Feed.id)]
    else:
        picks = [pick.order_by(m.Feed.next_due_at.asc().nulls_first(), m.Feed.id)]
    rows: list[Row[Any]] = []
    with store.transaction() as conn:
        for chosen in picks:
            if len(rows) >= limit:
                break
            chosen = chosen.limit(limit - len(rows))
            if store.dialect_name == "postgresql":
                # Rows another daemon is claiming right now are skipped, not waited for.
                chosen = chosen.with_for_update(skip_locked=True)
            rows += conn.execute(
                update(m.Feed)
                .where(m.Feed.id.in_(chosen))
                .values(lease_owner=owner, lease_token=m.Feed.lease_token + 1, lease_expires_at=expires_at)
                .returning(*m.Feed.__table__.columns)
            ).all()
    rows.sort(key=lambda r: (r.next_due_at is not None, r.next_due_at or now, r.id))
    return [Claim(feed=feed_state(row), owner=owner, token=row.lease_token, expires_at=expires_at) for row in rows]


def renew(store: Store, claims: Sequence[Claim], now: datetime, lease_seconds: float) -> list[Claim]:
    """Extend the leases still held to `now + lease_seconds`; return those claims, renewed.

    A claim is held while its feed's owner and token are unchanged: a lease that expired but was
    not claimed by anyone else is still held, one taken over or released is not.
    """
    expires_at = now + timedelta(seconds=lease_seconds)
    held: set[int] = set()
    with store.transaction() as conn:
        for chunk in chunks(claims):
            keys = [(c.feed.id, c.token, c.owner) for c in chunk]
            stmt = (
                update(m.Feed)
                .where(tuple_(m.Feed.id, m.Feed.lease_token, m.Feed.lease_owner).in_(keys))
                .values(lease_expires_at=expires_at)
                .returning(m.Feed.id)
            )
            held.update(conn.scalars(stmt))
    return [dataclasses.replace(c, expires_at=expires_at) for c in claims if c.feed.id in held]


def release_many(store: Store, releases: Sequence[Release], *,
                 then: Callable[[Connection, list[bool]], None] | None = None) -> list[bool]:
    """Give the leases back and store the feeds' results, in one transaction, each only if its
    claim is still held.

    A claim no longer held (the lease was taken over, or released, meanwhile) writes nothing: the
    caller then drops its result, which the new owner will produce again. The results are stored
    as `Store.record_feed_results` stores them (`feed_result_values`, `move_feed`).

    One transaction instead of one per feed is what keeps a pass over many unchanged feeds cheap.
    Returns, in order, whether each claim was still held (and its result stored). `then` writes
    more in the same transaction, told which claims were held (the feeds' poll states, say).
    """
    for release in releases:
        if release.result is not None and release.result.feed_id != release.claim.feed.id:
            raise ValueError(f"the result of feed {release.result.feed_id} released with the claim on "
                             f"{release.claim.feed.url} (feed {release.claim.feed.id})")
    held: list[bool] = []
    with store.transaction() as conn:
        for release in releases:
            claim, result = release.claim, release.result
            values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
            if result is not None:
                values.update(feed_result_values(result))
            if release.enabled is not None:
                values["enabled"] = release.enabled
            fenced = update(m.Feed).where(
                m.Feed.id == claim.feed.id, m.Feed.lease_token == claim.token, m.Feed.lease_owner == claim.owner
            )
            ok = conn.execute(fenced.values(values)).rowcount == 1
            if ok and result is not None and result.new_url is not None:
                move_feed(conn, claim.feed.id, result.new_url)
            held.append(ok)
        if then is not None:
            then(conn, held)
    return held


# -- singleton jobs --------------------------------------------------------------------------

def run_once_per(store: Store, job: str, key: str, owner: str, *, now: datetime | None = None) -> bool:
    """True for exactly one caller per (`job`, `key`) across every daemon, ever.

    The winner inserts the unique run row; everyone else finds it there. Pick `key` so that one
    run per key is what you want, e.g. the digest's date: `run_once_per(store, "daily-digest",
    "2026-11-25", owner)`. A winner that crashes leaves that key's run undone (at most once); for
    at-least-once work hold `advisory_lock` instead and make the work idempotent.
    """
    for value, what in ((job, "job name"), (key, "job run key"), (owner, "job owner")):
        _check_name(value, what)
    row = {"job": job, "run_key": key, "owner": owner, "claimed_at": now or datetime.now(UTC)}
    stmt = (store.insert(m.SingletonRun).values(row).on_conflict_do_nothing(index_elements=["job", "run_key"])
            .returning(m.SingletonRun.id))
    with store.transaction() as conn:
        return conn.scalar(stmt) is not None


_LOCAL_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


@contextmanager
def advisory_lock(store: Store, name: str) -> Iterator[bool]:
    """Try to become the one holder of lock `name` among all daemons; yield whether it worked.

    Never waits. On PostgreSQL a session-level `pg_try_advisory_lock` on a connection kept for
    the block (a daemon that dies loses the lock with its connection); on SQLite, which serves
    one daemon, a lock within this process.

        with advisory_lock(store, "clean-up") as mine:
            if mine:
                ...
    """
    _check_name(name, "lock name")
    engine = store.engine
    if store.dialect_name != "postgresql":
        with _LOCAL_LOCKS_GUARD:
            lock = _LOCAL_LOCKS.setdefault((str(engine.url), name), threading.Lock())
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
        return
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    try:
        conn = engine.connect()
    except SQLAlchemyError as e:
        raise StorageError(f"database {masked_url(engine.url)}: {describe_error(e)}") from e
    try:
        try:
            got = bool(conn.scalar(select(func.pg_try_advisory_lock(key))))
            conn.commit()
        except SQLAlchemyError as e:
            raise StorageError(f"advisory lock {name!r} on {masked_url(engine.url)}: {describe_error(e)}") from e
        try:
            yield got
        finally:
            if got:
                try:
                    conn.scalar(select(func.pg_advisory_unlock(key)))
                    conn.commit()
                except SQLAlchemyError:
                    # The session must not go back to the pool still holding the lock.
                    conn.invalidate()
    finally:
        conn.close()


# -- one daemon per SQLite database ----------------------------------------------------------

@contextmanager
def register_daemon(store: Store) -> Iterator[None]:
    """Hold this daemon's place on the database for the block: one on SQLite, any number on PostgreSQL.

    On SQLite an exclusive lock on `<database>.daemon.lock`, next to the database file, which the
    operating system drops when the process ends, crashed or not. A second daemon gets a
    StorageError saying to use PostgreSQL. A clean stop removes the file, so a lock file found
    holding a pid is the trace of a daemon that was killed or crashed: the warning says so.
    """
    database = store.engine.url.database if store.dialect_name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield   # PostgreSQL, or an SQLite database no other process can open
        return
    lock_path = Path(database).with_name(Path(database).name + ".daemon.lock")
    fd = _lock_file(lock_path, database)
    try:
        stale = _read_pid(fd)
        if stale:
            log.warning("the previous daemon (pid %s) did not stop cleanly (killed or crashed): took over its "
                        "stale lock %s; the feeds it was checking are checked again, and what it had not "
                        "stored is fetched again (nothing stored is lost)", stale, lock_path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            # Removed while still locked: a daemon starting now either fails on our lock, or
            # finds the file gone and makes a new one (_lock_file checks it locked the current file).
            try:
                lock_path.unlink()
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_file(lock_path: Path, database: str) -> int:
    """An open descriptor of `lock_path`, exclusively locked; StorageError if another daemon holds it."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot create the daemon lock file {lock_path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StorageError(f"cannot lock {lock_path}: {e.strerror}") from e
            raise StorageError(
                f"SQLite allows one daemon; use PostgreSQL for several: another monitor daemon"
                f"{f' (pid {holder})' if holder else ''} is using {database} (lock file {lock_path})"
            ) from e
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)        # the file was removed by a daemon stopping meanwhile: lock the new one


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


# --

def _check_name(value: str, what: str) -> None:
    if not value or len(value) > _MAX_NAME:
        raise ValueError(f"{what} must be 1 to {_MAX_NAME} characters, got {len(value)}: {value[:40]!r}")

