"""Cron expressions: when a scheduled digest is due.

Five fields, as in crontab(5): minute, hour, day of month, month, day of week (0 or 7 =
Sunday, names such as `mon` and `jan` accepted), each a `*`, a number, a range `a-b`, a list
`a,b` and an optional step `/n`; plus @hourly, @daily, @weekly, @monthly and @yearly. When
both day fields are restricted a day matches either, as cron has always done.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronSchedule"]

_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, lowest, highest, names) of the five fields, in order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _WEEKDAYS))
# A date that matches exists within this many days (29 February: at most eight years away).
_SEARCH_DAYS = 366 * 9


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    tz: ZoneInfo | timezone
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]          # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str, tz: str = "UTC") -> CronSchedule:
        """The schedule of `expression` in time zone `tz`; ValueError says what is wrong."""
        fields = _MACROS.get(expression.strip().lower(), expression).split()
        if len(fields) != 5:
            raise ValueError(f"cron expression {expression!r} needs 5 fields (minute hour day month weekday), "
                             f"got {len(fields)}")
        minutes, hours, days, months, weekdays = (
            _parse_field(text, *spec, expression) for text, spec in zip(fields, _FIELDS))
        return cls(
            expression=expression, tz=_zone(tz), minutes=tuple(sorted(minutes)), hours=tuple(sorted(hours)),
            days=frozenset(days), months=frozenset(months), weekdays=frozenset(d % 7 for d in weekdays),
            days_restricted=not fields[2].startswith("*"), weekdays_restricted=not fields[4].startswith("*"),
        )

    def next_after(self, t: datetime) -> datetime:
        """The first time strictly after `t` (aware) at which the schedule fires, in UTC."""
        local = t.astimezone(self.tz)
        start = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime.combine(day, time(hour, minute))
                        if candidate < start:
                            continue
                        fires = candidate.replace(tzinfo=self.tz).astimezone(UTC)
                        if fires > t:          # a wall time repeated at a DST change fires once
                            return fires
            day += timedelta(days=1)
            start = datetime.combine(day, time(0, 0))
        raise ValueError(f"cron expression {self.expression!r} never fires")

    def latest_in(self, start: datetime, end: datetime) -> datetime | None:
        """The last time in (start, end] at which the schedule fires, or None."""
        fires = self.next_after(start)
        if fires > end:
            return None
        while (following := self.next_after(fires)) <= end:
            fires = following
        return fires

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week


def _zone(name: str) -> ZoneInfo | timezone:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris, or UTC)") from None


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int], expression: str) -> set[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        body, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                first, last = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                first, last = _value(a, names), _value(b, names)
            else:
                first = _value(body, names)
                last = high if step_text else first
        except ValueError:
            raise ValueError(f"cron expression {expression!r}: {name} field {text!r} is not valid") from None
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(f"cron expression {expression!r}: {name} field {text!r} must lie in {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    return names[text] if text in names else int(text)
