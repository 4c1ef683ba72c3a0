"""When to check a feed next, and how: the whole polling policy in one function.

`next_check` takes what one check of a feed came to (`CheckOutcome`) and what the policy
remembers about the feed (`PollState`, stored per feed by `monitor.db.feeds`) and decides
when the feed is checked next, whether it stays enabled, and whether the next request may be
conditional. Nothing else in the monitor makes a scheduling decision.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.config import ScheduleSettings

__all__ = ["MAX_CONSECUTIVE_FAILURES", "CheckOutcome", "NextCheck", "PollState", "next_check"]

# After this many consecutive hard failures a feed is disabled until `monitor feeds enable`.
MAX_CONSECUTIVE_FAILURES = 20

# Adaptive polling. New entries per check are smoothed (exponential moving average, weight of
# the newest check ACTIVITY_WEIGHT). A feed that brings BUSY or more new entries per check is
# checked SPEED_UP times more often, one that brings fewer than QUIET is checked SLOW_DOWN times
# less often; in between the interval holds. Checking more often means fewer new entries per
# check, so every feed settles where it brings between QUIET and BUSY new entries per check.
ACTIVITY_WEIGHT = 0.3
BUSY = 2.0
QUIET = 0.2
SPEED_UP = 1.5
SLOW_DOWN = 1.2

# Stale validators: some servers answer 304 forever, whatever changed (a cache that never
# revalidates, an ETag computed from the wrong thing). After at least STALE_CHECKS 304s in a row
# spanning STALE_FACTOR x max_interval, the next request is sent without validators, once.
STALE_CHECKS = 3
STALE_FACTOR = 4


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check of a feed came to, as far as scheduling cares."""

    ok: bool                         # fetched (200 or 304) and, if 200, parsed
    status: int | None = None        # HTTP status when there was one
    retry_after: float | None = None # seconds the server asked us to wait (429/503)
    ttl_seconds: int | None = None   # the feed's own <ttl>, a lower bound
    gone: bool = False               # 410 Gone: stop polling
    not_modified: bool = False       # 304: the server says nothing changed
    new_entries: int = 0             # entries this check found that the feed had not shown before
    max_age: float | None = None     # Cache-Control max-age of the response, a lower bound like ttl
    backlog: int = 0                 # new entries left for later checks (fetch.max_new_entries)


@dataclass(frozen=True, slots=True)
class PollState:
    """What the policy remembers about a feed from one check to the next."""

    interval: float | None = None    # the adapted interval in force; None = the configured one
    activity: float | None = None    # smoothed new entries per check; None until there is a measure
    checks: int = 0                  # successful checks so far (the first one sees the whole backlog)
    unchanged_since: datetime | None = None   # when the current run of 304s began
    unchanged_checks: int = 0        # 304s in a row
    revalidate: bool = False         # send the next request without ETag / Last-Modified


@dataclass(frozen=True, slots=True)
class NextCheck:
    due_at: datetime
    error_count: int
    enabled: bool
    poll: PollState = field(default_factory=PollState)

    @property
    def conditional(self) -> bool:
        """Whether the next request may carry the stored validators."""
        return not self.poll.revalidate


def next_check(outcome: CheckOutcome, *, error_count: int, interval: float | None,
               settings: ScheduleSettings, now: datetime, rng: random.Random | None = None,
               poll: PollState | None = None) -> NextCheck:
    """Decide the next check of a feed from the outcome of this one.

    `interval` is the feed's own configured interval (None: `settings.interval`). Success resets
    the error count and waits the feed's interval - adapted to how busy the feed is, unless the
    feed has an interval of its own or `settings.adaptive` is off - never less than the feed's
    ttl or the response's Cache-Control max-age. Failures back off exponentially with jitter, so
    many feeds failing together do not retry in lock-step; Retry-After is honoured; a feed that
    is gone or keeps failing is disabled. Everything is clamped to [min_interval, max_interval]
    (Retry-After may exceed max_interval, up to a day). A long run of 304s makes the next
    request unconditional, in case the server's validators have gone stale. A feed with a
    backlog (more new entries than one check takes) is due again at once, min_interval
    notwithstanding, so that the daemon's next tick takes the next share; its pace is not
    measured from a flood.
    """
    rng = rng or random.Random()
    poll = poll or PollState()
    configured = float(interval if interval is not None else settings.interval)
    lo, hi = float(settings.min_interval), float(settings.max_interval)

    def clamp(seconds: float, ceiling: float = hi) -> timedelta:
        return timedelta(seconds=min(max(seconds, lo), ceiling))

    if not outcome.ok:
        errors = error_count + 1
        enabled = not outcome.gone and errors < MAX_CONSECUTIVE_FAILURES
        backoff = min(configured * 2 ** min(errors - 1, 16), hi)
        wait = backoff * rng.uniform(0.8, 1.2)
        ceiling = hi
        if outcome.retry_after:
            # The server's own word wins over our backoff, within a day.
            ceiling = max(hi, min(outcome.retry_after, 86400.0))
            wait = max(wait, outcome.retry_after)
        # A failure says nothing about how busy the feed is: the poll state is kept as it was.
        return NextCheck(now + clamp(wait, ceiling), errors, enabled, poll)

    if outcome.backlog > 0:
        # Each check of a flooded feed takes a bounded share of it: the next share waits only for
        # the next tick (or the server's own ttl / max-age), and the flood says nothing of its pace.
        state = PollState(interval=poll.interval, activity=poll.activity, checks=poll.checks + 1)
        wait = max(float(outcome.ttl_seconds or 0), outcome.max_age or 0.0)
        return NextCheck(now + timedelta(seconds=min(wait, hi)), 0, True, state)

    # How busy is the feed? The first successful check sees the whole backlog, not a pace.
    new = 0 if outcome.not_modified else max(0, outcome.new_entries)
    activity = poll.activity
    if poll.checks > 0:
        activity = new if activity is None else (1 - ACTIVITY_WEIGHT) * activity + ACTIVITY_WEIGHT * new
    adapted: float | None = None
    if settings.adaptive and interval is None:
        adapted = poll.interval or configured
        if activity is not None and activity >= BUSY:
            adapted /= SPEED_UP
        elif activity is not None and activity < QUIET:
            adapted *= SLOW_DOWN
        adapted = min(max(adapted, lo), hi)

    # Validators that may have gone stale: after a long run of 304s, ask once without them.
    if outcome.not_modified:
        since = poll.unchanged_since or now
        unchanged = poll.unchanged_checks + 1
        revalidate = unchanged >= STALE_CHECKS and (now - since).total_seconds() >= STALE_FACTOR * hi
    else:
        since, unchanged, revalidate = None, 0, False

    state = PollState(interval=adapted, activity=activity, checks=poll.checks + 1,
                      unchanged_since=since, unchanged_checks=unchanged, revalidate=revalidate)
    wait = max(adapted or configured, float(outcome.ttl_seconds or 0), outcome.max_age or 0.0)
    return NextCheck(now + clamp(wait), 0, True, state)
