"""Scheduled digests: `monitor report` sent on a cron schedule, by exactly one daemon.

Each tick, every digest whose cron time passed within `policy.LATE_LIMIT` is claimed by
inserting its unique (digest, scheduled time) row; only the daemon whose insert went in
builds and sends it. A failed send is retried with the alerts' backoff, again claimed by one
conditional write. The digest covers the `window` before its scheduled time.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from monitor.alerts import policy
from monitor.alerts.cron import CronSchedule
from monitor.alerts.errors import DeliveryError
from monitor.alerts.message import envelope
from monitor.alerts.smtp import send_mail
from monitor.alerts.webhook import post
from monitor.config import DigestSettings, Settings
from monitor.db.alerts import AlertLedger
from monitor.report import Digest, StoryInfo, build_digest, render

__all__ = ["DigestSummary", "run_due_digests"]

log = logging.getLogger("monitor.digests")

_CONTENT_TYPES = {"text": "text/plain", "markdown": "text/markdown", "html": "text/html",
                  "json": "application/json", "csv": "text/csv"}
_SUFFIXES = {"text": "txt", "markdown": "md", "html": "html", "json": "json", "csv": "csv"}


@dataclass(frozen=True, slots=True)
class DigestSummary:
    sent: int = 0
    failed: int = 0

    def line(self) -> str:
        return f"scheduled digests: {self.sent} sent, {self.failed} failed"


def run_due_digests(settings: Settings, store: Any, stories: Sequence[Any], now: datetime) -> DigestSummary:
    """Send each digest due at `now` that no other daemon has claimed, and the retries that are due."""
    ledger = AlertLedger(store)
    sent = failed = 0
    for digest in settings.digests:
        schedule = CronSchedule.parse(digest.cron, digest.timezone)
        runs: list[tuple[datetime, int]] = []
        due = schedule.latest_in(now - policy.LATE_LIMIT, now)
        if due is not None and ledger.claim_run(digest.key, due, now):
            runs.append((due, 1))
        retry = ledger.claim_retry(digest.key, now)
        if retry is not None:
            runs.append(retry)
        for scheduled_for, attempt in runs:
            try:
                _send(settings, store, stories, digest, scheduled_for, now)
            except DeliveryError as e:
                failed += 1
                after = policy.after_attempt(ok=False, failures=attempt, now=now, interval=0,
                                             delivery=settings.delivery)
                retry_at = None if after.give_up else after.at
                ledger.finish_run(digest.key, scheduled_for, now, error=str(e), retry_at=retry_at)
                log.warning("digest %s of %s: attempt %d failed%s: %s", digest.key, scheduled_for.isoformat(),
                            attempt, f", retrying at {retry_at.isoformat()}" if retry_at else "; given up", e)
                continue
            ledger.finish_run(digest.key, scheduled_for, now)
            sent += 1
            log.info("digest %s of %s sent", digest.key, scheduled_for.isoformat())
    return DigestSummary(sent=sent, failed=failed)


def build_scheduled(store: Any, stories: Sequence[Any], digest: DigestSettings, scheduled_for: datetime,
                    now: datetime) -> Digest:
    """The digest of the `window` before `scheduled_for`."""
    chosen = [s for s in stories if getattr(s, "enabled", True) and digest.story in (None, s.id)]
    since, until = scheduled_for - timedelta(seconds=digest.window), scheduled_for
    matches = store.matches([s.id for s in chosen], since, until)
    return build_digest([StoryInfo.of(s) for s in chosen], matches, since=since, until=until, generated_at=now)


def _send(settings: Settings, store: Any, stories: Sequence[Any], digest: DigestSettings,
          scheduled_for: datetime, now: datetime) -> None:
    built = build_scheduled(store, stories, digest, scheduled_for, now)
    content = render(built, digest.format)  # type: ignore[arg-type]
    if digest.path:
        _write(settings.base_dir, digest, scheduled_for, content)
    elif digest.webhook:
        post(digest.webhook, content.encode("utf-8"), f"{_CONTENT_TYPES[digest.format]}; charset=utf-8",
             settings.fetch)
    else:
        send_mail(settings.smtp, _email(settings, built, digest, scheduled_for, content), base_dir=settings.base_dir)


def _write(base_dir: Path, digest: DigestSettings, scheduled_for: datetime, content: str) -> None:
    """Write the file whole or not at all: a reader never sees half a digest."""
    target = base_dir / _local(digest, scheduled_for).strftime(digest.path or "")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digest-", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, target)
    except OSError as e:
        raise DeliveryError(str(target), f"cannot write the digest: {e.strerror or e}") from e


def _email(settings: Settings, built: Digest, digest: DigestSettings, scheduled_for: datetime,
           content: str) -> EmailMessage:
    day = _local(digest, scheduled_for).strftime("%Y-%m-%d")
    titles = ", ".join(s.story.title for s in built.stories) or "no story"
    message = envelope(f"monitor digest, {day}: {titles}", settings.smtp.sender or "", digest.email)
    if digest.format == "html":
        message.set_content(render(built, "text"))
        message.add_alternative(content, subtype="html")
    elif digest.format in ("text", "markdown"):
        message.set_content(content)
    else:
        message.set_content(f"The digest of {day} is attached ({digest.format.upper()}).\n")
        maintype, subtype = _CONTENT_TYPES[digest.format].split("/")
        message.add_attachment(content.encode("utf-8"), maintype=maintype, subtype=subtype,
                               filename=f"digest-{day}.{_SUFFIXES[digest.format]}")
    return message


def _local(digest: DigestSettings, t: datetime) -> datetime:
    return t.astimezone(CronSchedule.parse(digest.cron, digest.timezone).tz)
