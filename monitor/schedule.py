"""When to check a feed next: the whole policy in one function."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import ScheduleSettings

# After this many consecutive hard failures a feed is disabled until `monitor feeds enable`.
MAX_CONSECUTIVE_FAILURES = 20


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check of a feed came to, as far as scheduling cares."""

    ok: bool                         # fetched (200 or 304) and, if 200, parsed
    status: int | None = None        # HTTP status when there was one
    retry_after: float | None = None # seconds the server asked us to wait (429/503)
    ttl_seconds: int | None = None   # the feed's own <ttl>, a lower bound
    gone: bool = False               # 410 Gone: stop polling


@dataclass(frozen=True, slots=True)
class NextCheck:
    due_at: datetime
    error_count: int
    enabled: bool


def next_check(outcome: CheckOutcome, *, error_count: int, interval: float | None,
               settings: ScheduleSettings, now: datetime, rng: random.Random | None = None) -> NextCheck:
    """Decide the next check of a feed from the outcome of this one.

    Success resets the error count and waits the feed's interval (its own override, else the
    default), never less than the feed's ttl; failures back off exponentially with jitter, so
    many feeds failing together do not retry in lock-step; Retry-After is honoured; a feed that
    is gone or keeps failing is disabled. Everything is clamped to [min_interval, max_interval].
    """
    rng = rng or random.Random()
    base = interval if interval is not None else float(settings.interval)
    lo, hi = float(settings.min_interval), float(settings.max_interval)
    if outcome.ok:
        wait = max(base, float(outcome.ttl_seconds or 0))
        return NextCheck(now + timedelta(seconds=min(max(wait, lo), hi)), 0, True)
    errors = error_count + 1
    enabled = not outcome.gone and errors < MAX_CONSECUTIVE_FAILURES
    backoff = min(base * 2 ** min(errors - 1, 16), hi)
    wait = backoff * rng.uniform(0.8, 1.2)
    ceiling = hi
    if outcome.retry_after:
        # The server's own word wins over our backoff, within a day.
        ceiling = max(hi, min(outcome.retry_after, 86400.0))
        wait = max(wait, outcome.retry_after)
    return NextCheck(now + timedelta(seconds=min(max(wait, lo), ceiling)), errors, enabled)
