"""Leases on due feeds, fencing, singleton jobs and the one-daemon rule of SQLite, on real databases.

Several "daemons" are threads or processes with Stores (stores) of their own, so each holds its own
database connections and transactions, as separate daemons do.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from monitor.db import leases
from monitor.db import models as m
from monitor.db.engine import make_engine
from monitor.db.leases import (
    Claim,
    Release,
    advisory_lock,
    claim_due_feeds,
    register_daemon,
    release_many,
    renew,
    run_once_per,
)
from monitor.db.store import FeedResult, Store
from monitor.exceptions import StorageError

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = 60.0
_R = TypeVar("_R")


@pytest.fixture
def url(db_url: str) -> Iterator[str]:
    """A migrated database (SQLite, then PostgreSQL) holding feeds 0..99, all due."""
    with Store.open(db_url, create=True) as store:
        store.sync_feeds([(f"http://news.test/{i}/feed.xml", None, None) for i in range(100)])
    yield db_url


@pytest.fixture
def pg(pg_schema_url: str) -> Iterator[str]:
    """The same on PostgreSQL only."""
    with Store.open(pg_schema_url, create=True) as store:
        store.sync_feeds([(f"http://news.test/{i}/feed.xml", None, None) for i in range(100)])
    yield pg_schema_url


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    store = Store(make_engine(url))
    yield store
    store.close()


def release(store: Store, claim: Claim, *, enabled: bool | None = None, **result: Any) -> bool:
    """Give one claim back, with the check's result when `result` names one (FeedResult's fields)."""
    outcome = FeedResult(claim.feed.id, **result) if result else None
    return release_many(store, [Release(claim, outcome, enabled)])[0]


def _feed_row(store: Store, feed_id: int) -> m.Feed:
    with store.engine.connect() as conn:
        return conn.execute(select(m.Feed.__table__).where(m.Feed.id == feed_id)).one()


def _all_ids(store: Store) -> set[int]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(m.Feed.id)))


def _in_threads(count: int, work: Callable[[int, Store], _R], url: str) -> list[_R]:
    """Run `work(i, store)` in `count` threads started together, each with its own store."""
    stores = [Store(make_engine(url)) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[_R | None] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i, stores[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for e in stores:
            e.close()
    assert not errors, errors
    return results  # type: ignore[return-value]


# -- claiming --------------------------------------------------------------------------------

def test_three_daemons_claim_disjoint_sets_that_cover_every_due_feed(pg: str) -> None:
    def daemon(i: int, store: Store) -> list[Claim]:
        mine: list[Claim] = []
        while batch := claim_due_feeds(store, f"daemon-{i}", T0, 7, LEASE):
            mine.extend(batch)
        return mine

    claimed = _in_threads(3, daemon, pg)
    ids = [[c.feed.id for c in claims] for claims in claimed]
    every = [feed_id for part in ids for feed_id in part]
    store = Store(make_engine(pg))
    try:
        assert len(every) == len(set(every)) == 100
        assert set(every) == _all_ids(store)
        for i, claims in enumerate(claimed):
            for c in claims:
                row = _feed_row(store, c.feed.id)
                assert (row.lease_owner, row.lease_token) == (f"daemon-{i}", c.token) == (c.owner, 1)
    finally:
        store.close()


def test_a_claim_in_an_open_transaction_is_skipped_not_waited_for(pg: str) -> None:
    holder = Store(make_engine(pg))
    # Were rows waited for instead of skipped, the claim below would fail after 5 s, not hang.
    claimer = Store(make_engine(pg + "%20-clock_timeout%3D5s"))
    try:
        with holder.engine.connect() as conn, conn.begin():
            locked = set(conn.scalars(select(m.Feed.id).order_by(m.Feed.id).limit(3).with_for_update()))
            claims = claim_due_feeds(claimer, "other", T0, 1000, LEASE)
            assert {c.feed.id for c in claims} == _all_ids(claimer) - locked
        # The transaction ended; the skipped feeds are free for the taking.
        assert {c.feed.id for c in claim_due_feeds(claimer, "other", T0, 1000, LEASE)} == locked
    finally:
        holder.close()
        claimer.close()


def test_only_enabled_due_unleased_feeds_are_claimed_longest_waiting_first(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(m.Feed.__table__.update().where(m.Feed.id <= 50).values(next_due_at=T0 + timedelta(hours=1)))
        conn.execute(m.Feed.__table__.update().where(m.Feed.id == 60).values(enabled=False))
        conn.execute(m.Feed.__table__.update().where(m.Feed.id == 70).values(next_due_at=T0 - timedelta(hours=2)))
        conn.execute(m.Feed.__table__.update().where(m.Feed.id == 80).values(next_due_at=T0))
    first = claim_due_feeds(store, "a", T0, 3, LEASE)
    # Never checked (no next_due_at) before overdue, then by id.
    assert [c.feed.id for c in first] == [51, 52, 53]
    rest = claim_due_feeds(store, "a", T0, 1000, LEASE)
    assert [c.feed.id for c in rest][-2:] == [70, 80]
    assert {c.feed.id for c in first + rest} == set(range(51, 101)) - {60}
    assert claim_due_feeds(store, "b", T0, 1000, LEASE) == []
    # A whole pass (`run --once`) takes every enabled feed that nobody holds, due or not.
    assert {c.feed.id for c in claim_due_feeds(store, "b", T0, 1000, LEASE, due_only=False)} == set(range(1, 51))


def test_an_expired_lease_is_taken_over_with_a_higher_token(store: Store) -> None:
    [mine] = claim_due_feeds(store, "crashed", T0, 1, LEASE)
    assert mine.expires_at == T0 + timedelta(seconds=LEASE)
    still_live = T0 + timedelta(seconds=LEASE - 1)
    assert mine.feed.id not in {c.feed.id for c in claim_due_feeds(store, "b", still_live, 1000, LEASE)}
    after_expiry = T0 + timedelta(seconds=LEASE + 1)
    [theirs] = claim_due_feeds(store, "c", after_expiry, 1, LEASE)
    assert theirs.feed.id == mine.feed.id
    assert theirs.token == mine.token + 1
    assert _feed_row(store, mine.feed.id).lease_owner == "c"


def test_a_crashed_daemons_feeds_are_taken_over_after_its_leases_expire(pg: str) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime
        from monitor.db.store import Store
        from monitor.db.leases import claim_due_feeds
        claims = claim_due_feeds(Store.open(sys.argv[1]), "doomed", datetime.fromisoformat({T0.isoformat()!r}), 10, {LEASE})
        print(" ".join(str(c.feed.id) for c in claims), flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script, pg], stdout=subprocess.PIPE, text=True)
    try:
        doomed = {int(x) for x in child.stdout.readline().split()}  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(doomed) == 10

    def survivor(i: int, store: Store) -> set[int]:
        got: set[int] = set()
        while batch := claim_due_feeds(store, f"survivor-{i}", T0, 9, LEASE):
            for c in batch:
                assert release(store, c, fetched_at=T0, status="ok", error=None, error_count=0,
                               next_due_at=T0 + timedelta(hours=1))
                got.add(c.feed.id)
        return got

    now_parts = _in_threads(2, survivor, pg)
    store = Store(make_engine(pg))
    try:
        assert now_parts[0].isdisjoint(now_parts[1])
        assert now_parts[0] | now_parts[1] == _all_ids(store) - doomed
    finally:
        store.close()

    def after_expiry(i: int, store: Store) -> set[int]:
        now = T0 + timedelta(seconds=LEASE + 1)
        return {c.feed.id for c in claim_due_feeds(store, f"survivor-{i}", now, 1000, LEASE)}

    later_parts = _in_threads(2, after_expiry, pg)
    assert later_parts[0].isdisjoint(later_parts[1])
    assert later_parts[0] | later_parts[1] == doomed


# -- renewing and releasing ------------------------------------------------------------------

def test_renew_extends_only_the_leases_still_held(store: Store) -> None:
    claims = claim_due_feeds(store, "a", T0, 4, LEASE)
    kept, released, taken, expired_untouched = claims
    assert release(store, released)
    later = T0 + timedelta(seconds=LEASE + 10)
    # Another daemon takes one expired lease over; the other expired one nobody claimed.
    with store.engine.begin() as conn:
        conn.execute(m.Feed.__table__.update().where(m.Feed.id != taken.feed.id).values(next_due_at=later + timedelta(hours=1)))
    [takeover] = claim_due_feeds(store, "b", later, 1, LEASE)
    assert takeover.feed.id == taken.feed.id

    renewed = renew(store, claims, later, 300)
    assert [c.feed.id for c in renewed] == [kept.feed.id, expired_untouched.feed.id]
    assert all(c.expires_at == later + timedelta(seconds=300) for c in renewed)
    assert _feed_row(store, kept.feed.id).lease_expires_at == later + timedelta(seconds=300)
    assert _feed_row(store, taken.feed.id).lease_expires_at == later + timedelta(seconds=LEASE)
    assert _feed_row(store, taken.feed.id).lease_owner == "b"
    assert _feed_row(store, released.feed.id).lease_expires_at is None
    # A renewed lease keeps others out past the old expiry.
    others = claim_due_feeds(store, "c", later + timedelta(seconds=LEASE + 1), 1000, LEASE, due_only=False)
    assert {c.feed.id for c in others}.isdisjoint({kept.feed.id, expired_untouched.feed.id})
    assert released.feed.id in {c.feed.id for c in others}


def test_renew_many_claims_at_once(store: Store) -> None:
    claims = claim_due_feeds(store, "a", T0, 1000, LEASE)
    assert len(renew(store, claims, T0, 120)) == 100


def test_release_stores_the_result_and_frees_the_feed(store: Store) -> None:
    [claim] = claim_due_feeds(store, "a", T0, 1, LEASE)
    due = T0 + timedelta(minutes=15)
    assert release(store, claim, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=due,
                   etag='"v1"', last_modified="Wed, 25 Nov 2026 12:00:00 GMT", title="News",
                   new_url="http://news.test/moved.xml")
    row = _feed_row(store, claim.feed.id)
    assert (row.lease_owner, row.lease_expires_at, row.lease_token) == (None, None, 1)
    assert (row.last_fetched_at, row.last_status, row.next_due_at, row.etag, row.title, row.url) == (
        T0, "ok", due, '"v1"', "News", "http://news.test/moved.xml")
    # None keeps the validators, as Store.record_feed_result does; a failure may disable the feed.
    again = next(c for c in claim_due_feeds(store, "a", due, 1000, LEASE) if c.feed.id == claim.feed.id)
    assert again.token == 2
    assert release(store, again, fetched_at=due, status="error", error="HTTP 410", error_count=1,
                   next_due_at=due, enabled=False)
    row = _feed_row(store, claim.feed.id)
    assert (row.etag, row.last_error, row.enabled) == ('"v1"', "HTTP 410", False)


def test_a_permanent_redirect_onto_another_feeds_url_is_not_followed(store: Store) -> None:
    [claim] = claim_due_feeds(store, "a", T0, 1, LEASE)
    other = "http://news.test/7/feed.xml"
    assert release(store, claim, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
                   new_url=other)
    assert _feed_row(store, claim.feed.id).url == claim.feed.url


def test_a_release_without_result_leaves_the_feed_due_for_the_next_daemon(store: Store) -> None:
    [claim] = claim_due_feeds(store, "a", T0, 1, LEASE)
    assert release(store, claim)
    assert _feed_row(store, claim.feed.id).last_fetched_at is None
    assert claim.feed.id in {c.feed.id for c in claim_due_feeds(store, "b", T0, 1000, LEASE)}


def test_a_fenced_release_after_takeover_returns_false_and_changes_nothing(store: Store) -> None:
    [late] = claim_due_feeds(store, "slow", T0, 1, LEASE)
    later = T0 + timedelta(seconds=LEASE + 1)
    [new] = claim_due_feeds(store, "fast", later, 1, LEASE)
    assert new.feed.id == late.feed.id
    before = _feed_row(store, late.feed.id)

    assert not release(store, late, fetched_at=later, status="ok", error=None, error_count=0,
                       next_due_at=later + timedelta(hours=1), etag='"stale"', new_url="http://elsewhere.test/")
    assert not release(store, late)
    assert _feed_row(store, late.feed.id) == before
    assert before.lease_owner == "fast"

    assert release(store, new, fetched_at=later, status="not-modified", error=None, error_count=0,
                   next_due_at=later + timedelta(hours=1))
    assert _feed_row(store, new.feed.id).last_status == "not-modified"
    # Released twice is released once; the slow daemon's claim stays dead.
    assert not release(store, new)
    assert not release(store, late, fetched_at=later, status="ok", error=None, error_count=0, next_due_at=later)
    assert _feed_row(store, new.feed.id).last_status == "not-modified"


def test_release_many_stores_the_results_still_held_and_says_which(store: Store) -> None:
    first, lost, third = claim_due_feeds(store, "a", T0, 3, LEASE)
    later = T0 + timedelta(seconds=LEASE + 1)
    with store.engine.begin() as conn:
        conn.execute(m.Feed.__table__.update().where(m.Feed.id != lost.feed.id).values(next_due_at=later + timedelta(hours=1)))
    [winner] = claim_due_feeds(store, "b", later, 1, LEASE)
    assert winner.feed.id == lost.feed.id

    def result(claim: Claim) -> FeedResult:
        return FeedResult(claim.feed.id, fetched_at=later, status="not-modified", error=None, error_count=0,
                          next_due_at=later + timedelta(minutes=15))

    assert release_many(store, [Release(first, result(first)), Release(lost, result(lost)),
                                Release(third)]) == [True, False, True]
    assert _feed_row(store, first.feed.id).last_status == "not-modified"
    assert _feed_row(store, lost.feed.id).last_status is None
    assert _feed_row(store, lost.feed.id).lease_owner == "b"
    assert (_feed_row(store, third.feed.id).last_status, _feed_row(store, third.feed.id).lease_owner) == (None, None)
    with pytest.raises(ValueError, match="released with the claim on"):
        release_many(store, [Release(winner, result(first))])
    assert _feed_row(store, winner.feed.id).lease_owner == "b"


def test_a_redirect_too_long_to_store_is_refused_aloud_and_the_result_kept(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # The same policy as Store.record_feed_results: the feed stays, the check's result is stored.
    [claim] = claim_due_feeds(store, "a", T0, 1, LEASE)
    with caplog.at_level(logging.WARNING, logger="monitor.db"):
        assert release(store, claim, fetched_at=T0, status="ok", error=None, error_count=0, next_due_at=T0,
                       etag='"v2"', new_url="http://news.test/" + "x" * 3000)
    row = _feed_row(store, claim.feed.id)
    assert (row.url, row.last_status, row.etag, row.lease_owner) == (claim.feed.url, "ok", '"v2"', None)
    assert any(r.getMessage().startswith(f"{claim.feed.url}: not moved") for r in caplog.records)


# -- singleton jobs --------------------------------------------------------------------------

def test_a_singleton_job_runs_once_across_three_daemons(url: str) -> None:
    def daemon(i: int, store: Store) -> tuple[bool, bool]:
        return (run_once_per(store, "daily-digest", "2026-11-25", f"daemon-{i}"),
                run_once_per(store, "daily-digest", "2026-11-25", f"daemon-{i}"))

    outcomes = _in_threads(3, daemon, url)
    assert sorted(first for first, _ in outcomes) == [False, False, True]
    assert not any(second for _, second in outcomes)
    store = Store(make_engine(url))
    try:
        assert run_once_per(store, "daily-digest", "2026-11-26", "daemon-0")
        assert run_once_per(store, "clean-up", "2026-11-25", "daemon-0")
        with store.engine.connect() as conn:
            owners = conn.execute(select(m.SingletonRun.owner).where(m.SingletonRun.run_key == "2026-11-25",
                                                                     m.SingletonRun.job == "daily-digest")).all()
        winner = [i for i, (first, _) in enumerate(outcomes) if first][0]
        assert owners == [(f"daemon-{winner}",)]
    finally:
        store.close()


def test_an_advisory_lock_has_one_holder_at_a_time(url: str) -> None:
    a, b = Store(make_engine(url)), Store(make_engine(url))
    try:
        with advisory_lock(a, "clean-up") as first:
            with advisory_lock(b, "clean-up") as second, advisory_lock(b, "other-job") as other:
                assert (first, second, other) == (True, False, True)
        with advisory_lock(b, "clean-up") as after:
            assert after
    finally:
        a.close()
        b.close()


def test_an_advisory_lock_dies_with_its_daemon(pg: str) -> None:
    script = textwrap.dedent("""
        import sys, time
        from monitor.db.store import Store
        from monitor.db.leases import advisory_lock
        with advisory_lock(Store.open(sys.argv[1]), "clean-up") as mine:
            print(mine, flush=True)
            time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script, pg], stdout=subprocess.PIPE, text=True)
    store = Store(make_engine(pg))
    try:
        assert child.stdout.readline().strip() == "True"  # type: ignore[union-attr]
        with advisory_lock(store, "clean-up") as mine:
            assert not mine
        child.send_signal(signal.SIGKILL)
        child.wait()
        # The server ends the dead session and its locks; that takes a moment, never long.
        for _ in range(100):
            with advisory_lock(store, "clean-up") as mine:
                if mine:
                    break
            threading.Event().wait(0.1)
        assert mine
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        store.close()


# -- one daemon on SQLite --------------------------------------------------------------------

_HOLD_DAEMON = textwrap.dedent("""
    import sys, time
    from monitor.db.store import Store
    from monitor.db.leases import register_daemon
    with register_daemon(Store.open(sys.argv[1])):
        print("registered", flush=True)
        time.sleep(600)
""")


def test_sqlite_refuses_a_second_daemon_until_the_first_is_gone(sqlite_url: str) -> None:
    Store.open(sqlite_url, create=True).close()
    first = subprocess.Popen([sys.executable, "-c", _HOLD_DAEMON, sqlite_url], stdout=subprocess.PIPE, text=True)
    store = Store(make_engine(sqlite_url))
    try:
        assert first.stdout.readline().strip() == "registered"  # type: ignore[union-attr]
        with pytest.raises(StorageError) as refused:
            with register_daemon(store):
                pass
        message = str(refused.value)
        assert "SQLite allows one daemon; use PostgreSQL for several" in message
        assert f"pid {first.pid}" in message and "\n" not in message
        # A daemon killed outright frees its place with its process.
        first.send_signal(signal.SIGKILL)
        first.wait()
        with register_daemon(store):
            with pytest.raises(StorageError, match="use PostgreSQL"):
                with register_daemon(store):
                    pass
        with register_daemon(store):
            pass
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        store.close()


def test_postgresql_takes_any_number_of_daemons(pg: str) -> None:
    stores = [Store(make_engine(pg)) for _ in range(3)]
    try:
        with register_daemon(stores[0]), register_daemon(stores[1]), register_daemon(stores[2]):
            pass
    finally:
        for e in stores:
            e.close()


def test_owner_names_are_unique_and_fit() -> None:
    names = {leases.new_owner() for _ in range(100)}
    assert len(names) == 100
    assert all(0 < len(n) <= 200 for n in names)
