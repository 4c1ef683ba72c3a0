"""The monitor as a service other aggregators feed: reader's plugin and Miniflux's webhook.

Whichever way an entry arrives, it takes the path of the monitor's own passes
(`Pipeline.ingest`): dedup, page fetch, extraction, matching, storage, then alerts. Handing
entries over (`submit`) only writes them to the inbox table; a worker thread processes the
inbox, so an aggregator's update call or a webhook request never waits for extraction, and
entries accepted before a crash are processed after the restart.

    with MonitorService.from_config("monitor.toml") as svc:
        svc.start()
        svc.submit("miniflux", feed_url, [external_entry(...)], feed_title="Example News")
        svc.wait_idle(timeout=60)
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from monitor._types import FeedEntry, FeedState
from monitor.config import Settings, find_config, load_settings
from monitor.db import inbox
from monitor.matching import Story
from monitor.pipeline import PassSummary
from monitor.runtime import Runtime
from monitor.wording import plural

log = logging.getLogger("monitor.service")

ORIGINS = ("reader", "miniflux")
_BATCH_ROWS = 50          # inbox rows taken at once
_IDLE_POLL = 2.0          # seconds between inbox checks when nothing woke the worker


class MonitorService:
    """A monitor opened on its settings: store, stories and pipeline, and the inbox worker."""

    def __init__(self, settings: Settings, *, stories: Sequence[Story] | None = None) -> None:
        self.runtime = Runtime.open(settings, stories=stories, sync_feeds=False)
        self.settings, self.store, self.stories = settings, self.runtime.store, self.runtime.stories
        try:
            self.runtime.prepare_delivery()
        except BaseException:
            self.runtime.close()
            raise
        # One pipeline for every caller: each ingest is a pass of its own, so callers need no lock.
        self._pipeline = self.runtime.pipeline()
        self._busy = _Busy()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._feeds: dict[tuple[str, str], FeedState] = {}

    @classmethod
    def from_config(cls, config: str | Path | Settings | None = None) -> MonitorService:
        """Open the monitor configured by `config` (a path or Settings), else by $MONITOR_CONFIG or
        ./monitor.toml, else the defaults - as the `monitor` command finds it."""
        if isinstance(config, Settings):
            return cls(config)
        return cls(load_settings(find_config(str(config) if config is not None else None)))

    # -- handing entries over ----------------------------------------------------------------

    def submit(self, origin: str, feed_url: str, entries: Sequence[FeedEntry], *,
               feed_title: str | None = None) -> int:
        """Queue `entries` of `feed_url` durably (one short insert) and wake the worker; never
        fetches or extracts. Returns the number of entries queued."""
        _check_origin(origin)
        if not entries:
            return 0
        inbox.put(self.store, origin, feed_url, entries, feed_title=feed_title, now=_now())
        self._wake.set()
        return len(entries)

    def ingest(self, origin: str, feed_url: str, entries: Sequence[FeedEntry], *,
               feed_title: str | None = None) -> PassSummary:
        """Process `entries` now, in the calling thread, bypassing the inbox; alerts follow."""
        _check_origin(origin)
        with self._busy:
            summary = self._ingest(origin, feed_url, entries, feed_title)
            if summary.new_matches:
                self.runtime.deliver()
        return summary

    def process_pending(self) -> PassSummary:
        """Process everything in the inbox now, in the calling thread; the summary of it all."""
        total = PassSummary()
        while not self._stop.is_set():
            if not self._process_batch(total):
                break
        return total

    def pending(self) -> int:
        """Inbox rows waiting (those in the works included)."""
        return inbox.counts(self.store)[0]

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread that processes the inbox (once)."""
        if self._worker is None or not self._worker.is_alive():
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name="monitor-inbox", daemon=True)
            self._worker.start()
            self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the inbox is empty (True) or `timeout` seconds passed (False). Without a
        running worker the inbox is processed here."""
        if self._worker is None or not self._worker.is_alive():
            self.process_pending()
            return self.pending() == 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        # A batch may still be finishing its alerts.
        return self._busy.wait_quiet(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop the worker after its current batch, then close the pools and the store."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self._busy.wait_quiet(None)      # ingests other threads are running stop at their next step
        self._pipeline.close()
        self.runtime.close()

    def __enter__(self) -> MonitorService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        log.info("processing handed-over entries from %s", self.store.engine.url.render_as_string(hide_password=True))
        while not self._stop.is_set():
            self._wake.wait(_IDLE_POLL)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self._process_batch(PassSummary()):
                    pass
            except Exception:
                # The database went away, say: log it, and try again later; the rows stay queued.
                log.exception("processing the inbox failed; retrying in %g s", _IDLE_POLL)
                self._stop.wait(_IDLE_POLL)

    def _process_batch(self, total: PassSummary) -> bool:
        """Take and process one batch of inbox rows; False when there was none."""
        with self._busy:
            return self._process_taken(total)

    def _process_taken(self, total: PassSummary) -> bool:
        lease = float(self.settings.schedule.lease)
        batches = inbox.take(self.store, _now(), limit=_BATCH_ROWS, claim_seconds=lease)
        if not batches:
            return False
        by_feed: dict[tuple[str, str], list[inbox.InboxBatch]] = defaultdict(list)
        for b in batches:
            by_feed[(b.origin, b.feed_url)].append(b)
        matched = False
        for (origin, feed_url), rows in by_feed.items():
            ids = [r.id for r in rows]
            entries = [e for r in rows for e in r.entries]
            title = next((r.feed_title for r in reversed(rows) if r.feed_title), None)
            try:
                summary = self._ingest(origin, feed_url, entries, title)
            except Exception:
                log.exception("%s entries of %s could not be processed; they stay queued and are tried again",
                              origin, feed_url)
                continue
            if summary.stopped:
                inbox.release(self.store, ids)
                return False
            inbox.done(self.store, ids)
            total.add(summary)
            matched |= summary.new_matches > 0
            log.info("%s, %s: %s: %s", origin, feed_url, plural(len(entries), "entry"), summary.line())
        if matched:
            self.runtime.deliver()
        return True

    # -- the one path ----------------------------------------------------------------------

    def _ingest(self, origin: str, feed_url: str, entries: Sequence[FeedEntry], title: str | None) -> PassSummary:
        feed = self._feed(origin, feed_url, title)
        return self._pipeline.ingest(feed, entries, title=title, stop=self._stop)

    def _feed(self, origin: str, feed_url: str, title: str | None) -> FeedState:
        """The feed row the entries are recorded under; the aggregator polls it, so a new one is
        stored disabled (`monitor run` never fetches it itself)."""
        feed = self._feeds.get((origin, feed_url))
        if feed is None:
            feed = self.store.add_feed(feed_url, title=title, source=origin, enabled=False)
            self._feeds[(origin, feed_url)] = feed
        return feed


class _Busy:
    """Counts the ingests in progress, so that `wait_idle` and `close` can wait for them to end."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_quiet(self, timeout: float | None) -> bool:
        """Block until no ingest is in progress (True) or `timeout` seconds passed (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


def _check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}: one of {', '.join(ORIGINS)}")


def _now() -> datetime:
    return datetime.now(UTC)
