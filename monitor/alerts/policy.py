"""When the next message may go: batching, retries with exponential backoff, giving up.

Alerts and scheduled digests both ask `after_attempt`, so the rules live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import DeliverySettings

# A claimed send slot is held this long: longer than any one send may take (the webhook's and
# SMTP's timeouts are far shorter), so a slot still held after it belongs to a process that died.
SEND_HOLD = timedelta(minutes=15)
# A scheduled digest whose time passed more than this long ago (no daemon was running) is
# skipped rather than sent late; the next one goes on time.
LATE_LIMIT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NextAttempt:
    at: datetime          # no message before this
    give_up: bool = False


def after_attempt(*, ok: bool, failures: int, now: datetime, interval: float,
                  delivery: DeliverySettings) -> NextAttempt:
    """What follows an attempt at `now`.

    `failures` counts the failed attempts in a row, this one included. A success opens the
    next message one `interval` later, which is what batches the matches found in between.
    A failure is retried after `retry_initial`, doubled with each further failure up to
    `retry_max`; after `max_attempts` failures the message is given up and the next one waits
    an interval, as after a success.
    """
    if ok:
        return NextAttempt(now + timedelta(seconds=interval))
    if failures >= max(1, delivery.max_attempts):
        return NextAttempt(now + timedelta(seconds=interval), give_up=True)
    delay = min(float(delivery.retry_max), float(delivery.retry_initial) * 2.0 ** min(failures - 1, 60))
    return NextAttempt(now + timedelta(seconds=delay))
