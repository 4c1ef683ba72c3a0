"""Alerts: new matches of a story, batched, sent to a webhook or by e-mail, once.

Before a pass, `prepare_delivery` checks the alerts and digests against the stories and
registers new alerts (an alert sends the matches made from then on, never the backlog).
After a pass, `deliver_alerts` records each alert's new matches as owed, and sends those of
every alert whose slot is due (`policy.after_attempt`): at most one message per interval,
retried with backoff on failure. The database (`monitor.db.alerts`) remembers what was sent,
so nothing goes twice, also across restarts and with several daemons.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.alerts import policy
from monitor.alerts.errors import DeliveryError
from monitor.alerts.message import AlertBatch, batch_of, email_message, json_body, slack_body
from monitor.alerts.smtp import credentials, send_mail
from monitor.alerts.webhook import post
from monitor.config import AlertSettings, Settings
from monitor.db.alerts import AlertLedger
from monitor.exceptions import ConfigError
from monitor.wording import plural

__all__ = ["AlertSummary", "deliver_alerts", "prepare_delivery"]

log = logging.getLogger("monitor.alerts")


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """What one round of delivery did."""

    messages: int = 0       # messages delivered
    matches: int = 0        # matches those messages carried
    failed: int = 0         # messages that failed this round (retried later unless given up)
    given_up: int = 0       # matches abandoned after delivery.max_attempts failures
    waiting: int = 0        # matches owed, for a later message

    def __add__(self, other: AlertSummary) -> AlertSummary:
        return AlertSummary(*(a + b for a, b in zip(_fields(self), _fields(other))))

    def line(self) -> str:
        return (f"alerts: {plural(self.messages, 'message')} sent ({plural(self.matches, 'match')}), "
                f"{self.failed} failed, {plural(self.given_up, 'match')} given up, {self.waiting} waiting")


def _fields(summary: AlertSummary) -> tuple[int, ...]:
    return (summary.messages, summary.matches, summary.failed, summary.given_up, summary.waiting)


def prepare_delivery(settings: Settings, store: Any, stories: Sequence[Any], now: datetime) -> None:
    """Check alerts and digests against the enabled `stories`; register new alerts at `now`.

    Raises ConfigError for a story that is not enabled or an SMTP credential variable that is
    not set, so a mistake stops `run` at once instead of failing every message later.
    """
    enabled = {s.id for s in stories if getattr(s, "enabled", True)}
    for key in ("alerts", "digests"):
        for i, item in enumerate(getattr(settings, key)):
            if item.story is not None and item.story not in enabled:
                raise ConfigError(f"{key}[{i}].story: no enabled story {item.story!r}; enabled: "
                                  f"{', '.join(sorted(enabled)) or 'none'}", str(settings.path) if settings.path else None)
    if any(item.email for item in settings.alerts) or any(item.email for item in settings.digests):
        try:
            credentials(settings.smtp)
        except DeliveryError as e:
            raise ConfigError(str(e)) from None
    ledger = AlertLedger(store)
    for alert in settings.alerts:
        ledger.register(alert.key, alert.story, now)


def deliver_alerts(settings: Settings, store: Any, now: datetime, *,
                   stories: Sequence[Any] = ()) -> AlertSummary:
    """Send every alert whose message is due at `now`; `stories` give the titles shown.

    An alert not registered yet (see `prepare_delivery`) starts at `now`. A failed message is
    logged and retried on a later call; this never raises for a delivery failure.
    """
    titles = {s.id: s.title for s in stories}
    ledger = AlertLedger(store)
    summary = AlertSummary()
    for alert in settings.alerts:
        ledger.register(alert.key, alert.story, now)
        ledger.enqueue(alert.key, alert.min_score, now)
        summary += _deliver_one(settings, ledger, alert, titles.get(alert.story, alert.story), now)
    return summary


def _deliver_one(settings: Settings, ledger: AlertLedger, alert: AlertSettings, title: str,
                 now: datetime) -> AlertSummary:
    claim = ledger.claim(alert.key, now, hold_until=now + policy.SEND_HOLD)
    if claim is None:
        return AlertSummary(waiting=ledger.pending(alert.key))
    batch = batch_of(alert.key, alert.story, title, claim.matches)
    try:
        _send(settings, alert, batch, now)
    except DeliveryError as e:
        failures = claim.failures + 1
        after = policy.after_attempt(ok=False, failures=failures, now=now, interval=alert.interval,
                                     delivery=settings.delivery)
        ledger.mark_failed(claim, str(e), after.at, give_up=after.give_up)
        if after.give_up:
            log.error("alert %s: gave up %d matches after %d failed attempts: %s",
                      alert.key, len(claim.matches), failures, e)
            return AlertSummary(failed=1, given_up=len(claim.matches))
        log.warning("alert %s: attempt %d failed, retrying at %s: %s", alert.key, failures,
                    after.at.isoformat(timespec="seconds"), e)
        return AlertSummary(failed=1, waiting=len(claim.matches))
    after = policy.after_attempt(ok=True, failures=0, now=now, interval=alert.interval, delivery=settings.delivery)
    ledger.mark_sent(claim, now, after.at)
    log.info("alert %s: sent %s of %s", alert.key, plural(len(claim.matches), "match"), alert.story)
    return AlertSummary(messages=1, matches=len(claim.matches))


def _send(settings: Settings, alert: AlertSettings, batch: AlertBatch, now: datetime) -> None:
    if alert.webhook:
        if alert.format == "slack":
            post(alert.webhook, slack_body(batch), "application/json", settings.fetch)
        else:
            post(alert.webhook, json_body(batch, now), "application/json", settings.fetch)
        return
    sender = settings.smtp.sender or ""
    send_mail(settings.smtp, email_message(batch, sender, alert.email), base_dir=settings.base_dir)

