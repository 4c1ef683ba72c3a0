"""The next-check policy: one function, every case."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.config import Duration, ScheduleSettings
from monitor.schedule import MAX_CONSECUTIVE_FAILURES, CheckOutcome, next_check

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = ScheduleSettings(interval=Duration(900), min_interval=Duration(300), max_interval=Duration(6 * 3600))


def wait_of(outcome: CheckOutcome, errors: int = 0, interval: float | None = None) -> float:
    n = next_check(outcome, error_count=errors, interval=interval, settings=S, now=NOW, rng=random.Random(1))
    return (n.due_at - NOW).total_seconds()


def test_success_waits_the_interval_and_resets_errors() -> None:
    n = next_check(CheckOutcome(ok=True), error_count=4, interval=None, settings=S, now=NOW)
    assert (n.due_at - NOW) == timedelta(seconds=900) and n.error_count == 0 and n.enabled


def test_feed_interval_override_and_bounds() -> None:
    assert wait_of(CheckOutcome(ok=True), interval=3600) == 3600
    assert wait_of(CheckOutcome(ok=True), interval=10) == 300               # min_interval
    assert wait_of(CheckOutcome(ok=True), interval=10**6) == 6 * 3600       # max_interval


def test_ttl_is_a_lower_bound() -> None:
    assert wait_of(CheckOutcome(ok=True, ttl_seconds=3600)) == 3600
    assert wait_of(CheckOutcome(ok=True, ttl_seconds=60)) == 900


def test_failures_back_off_exponentially_with_jitter_up_to_the_maximum() -> None:
    waits = [wait_of(CheckOutcome(ok=False, status=500), errors=e) for e in range(8)]
    assert 900 * 0.8 <= waits[0] <= 900 * 1.2
    assert 1800 * 0.8 <= waits[1] <= 1800 * 1.2
    assert waits[7] <= 6 * 3600
    rng_waits = {next_check(CheckOutcome(ok=False), error_count=1, interval=None, settings=S, now=NOW).due_at
                 for _ in range(20)}
    assert len(rng_waits) > 1                                               # jitter: not lock-step


def test_retry_after_is_honoured() -> None:
    assert wait_of(CheckOutcome(ok=False, status=429, retry_after=7200)) >= 7200
    assert wait_of(CheckOutcome(ok=False, status=503, retry_after=10 * 3600)) == 10 * 3600


def test_gone_and_repeated_failures_disable() -> None:
    assert not next_check(CheckOutcome(ok=False, status=410, gone=True), error_count=0, interval=None,
                          settings=S, now=NOW).enabled
    n = next_check(CheckOutcome(ok=False), error_count=MAX_CONSECUTIVE_FAILURES - 1, interval=None, settings=S, now=NOW)
    assert not n.enabled and n.error_count == MAX_CONSECUTIVE_FAILURES


# --- adaptive polling, stale validators, Cache-Control ---------------------------------------

from monitor.schedule import BUSY, QUIET, STALE_CHECKS, STALE_FACTOR, PollState  # noqa: E402


def checks(counts: list[int], *, settings: ScheduleSettings = S, interval: float | None = None,
           not_modified: bool = False) -> list[PollState]:
    """The poll state after each of a run of successful checks bringing `counts` new entries."""
    poll, now, states = PollState(), NOW, []
    for new in counts:
        n = next_check(CheckOutcome(ok=True, status=304 if not_modified else 200, new_entries=new,
                                    not_modified=not_modified),
                       error_count=0, interval=interval, settings=settings, now=now, poll=poll)
        poll, now = n.poll, n.due_at
        states.append(poll)
    return states


def test_the_first_check_sees_a_backlog_not_a_pace() -> None:
    first = checks([50])[0]
    assert first.interval == 900 and first.activity is None and first.checks == 1


def test_busy_feeds_are_checked_more_often_down_to_min_interval() -> None:
    states = checks([40] + [10] * 12)
    intervals = [s.interval for s in states]
    assert intervals[1] == 600 and intervals[2] == 400                       # 900 / 1.5 / 1.5
    assert intervals == sorted(intervals, reverse=True) and intervals[-1] == 300


def test_quiet_feeds_are_checked_less_often_up_to_max_interval() -> None:
    states = checks([40] + [0] * 40)
    intervals = [s.interval for s in states]
    assert intervals[1] == 900 * 1.2
    assert intervals == sorted(intervals) and intervals[-1] == 6 * 3600


def test_a_steady_feed_keeps_its_interval() -> None:
    # about one new entry per check: between QUIET and BUSY, nothing to correct
    assert QUIET < 1 < BUSY
    assert {s.interval for s in checks([40] + [1] * 10)} == {900}


def test_a_feed_that_wakes_up_is_checked_more_often_again() -> None:
    slowed = checks([40] + [0] * 20)[-1]
    assert slowed.interval > 3600
    poll, now = slowed, NOW
    for _ in range(6):
        poll = next_check(CheckOutcome(ok=True, new_entries=8), error_count=0, interval=None, settings=S,
                          now=now, poll=poll).poll
    assert poll.interval < slowed.interval / 4


def test_feeds_with_their_own_interval_and_adaptive_off_are_not_adapted() -> None:
    assert {s.interval for s in checks([40] + [0] * 10, interval=1200)} == {None}
    fixed = ScheduleSettings(interval=Duration(900), adaptive=False)
    assert {s.interval for s in checks([40] + [30] * 10, settings=fixed)} == {None}
    n = next_check(CheckOutcome(ok=True, new_entries=30), error_count=0, interval=None, settings=fixed, now=NOW,
                   poll=PollState(interval=300.0, checks=5, activity=30.0))
    assert (n.due_at - NOW).total_seconds() == 900                           # the configured interval


def test_the_adapted_interval_is_what_the_next_check_waits() -> None:
    poll = PollState(interval=1800.0, activity=0.5, checks=4)
    n = next_check(CheckOutcome(ok=True, new_entries=1), error_count=0, interval=None, settings=S, now=NOW, poll=poll)
    assert (n.due_at - NOW).total_seconds() == 1800 == n.poll.interval


def test_cache_control_max_age_is_a_lower_bound_within_max_interval() -> None:
    assert wait_of(CheckOutcome(ok=True, max_age=7200)) == 7200
    assert wait_of(CheckOutcome(ok=True, max_age=60)) == 900
    assert wait_of(CheckOutcome(ok=True, max_age=10 * 86400)) == 6 * 3600
    assert wait_of(CheckOutcome(ok=True, ttl_seconds=3600, max_age=5400)) == 5400


def test_a_long_run_of_304s_makes_the_next_request_unconditional_once() -> None:
    poll, now, seen = PollState(checks=3, activity=0.0, interval=6 * 3600.0), NOW, []
    while now < NOW + timedelta(days=3):
        n = next_check(CheckOutcome(ok=True, status=304, not_modified=True), error_count=0, interval=None,
                       settings=S, now=now, poll=poll)
        seen.append((now, n.conditional))
        if not n.conditional:
            break
        poll, now = n.poll, n.due_at
    when, conditional = seen[-1]
    assert not conditional and len(seen) >= STALE_CHECKS
    assert when - NOW >= timedelta(seconds=STALE_FACTOR * 6 * 3600)
    assert all(c for _, c in seen[:-1])
    # the unconditional request comes back 200: the run of 304s is over, validators are trusted again
    after = next_check(CheckOutcome(ok=True, status=200, new_entries=0), error_count=0, interval=None,
                       settings=S, now=when, poll=n.poll)
    assert after.conditional and after.poll.unchanged_checks == 0 and after.poll.unchanged_since is None


def test_a_few_304s_after_a_long_pause_do_not_count_as_stale() -> None:
    # two 304s, a day apart (the daemon was stopped): fewer than STALE_CHECKS in a row
    poll = PollState(checks=3, unchanged_since=NOW - timedelta(days=2), unchanged_checks=STALE_CHECKS - 2)
    n = next_check(CheckOutcome(ok=True, not_modified=True), error_count=0, interval=None, settings=S, now=NOW,
                   poll=poll)
    assert n.conditional and n.poll.unchanged_checks == STALE_CHECKS - 1


def test_failures_keep_the_poll_state() -> None:
    poll = PollState(interval=1200.0, activity=0.7, checks=9, unchanged_checks=1, unchanged_since=NOW)
    n = next_check(CheckOutcome(ok=False, status=500), error_count=0, interval=None, settings=S, now=NOW, poll=poll)
    assert n.poll == poll and n.error_count == 1
