"""The next-check policy: one function, every case."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from monitor.config import ScheduleSettings, Duration
from monitor.schedule import MAX_CONSECUTIVE_FAILURES, CheckOutcome, next_check

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
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
