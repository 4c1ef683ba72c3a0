"""Coverage already published, brought in through the pipeline a poll uses: web archives (WARC).

Each HTML response of an archive is handed to `Pipeline.ingest` as an entry whose page is
fetched already, so it takes a polled page's path: dedup by canonical URL, extraction, matching,
storage. The entries are recorded under a disabled feed named `warc:FILE` (the name of the
file), which is how an article says where it came from; `monitor run` never fetches it.

Records go to the pipeline in batches (`_BATCH_PAGES` pages or `_BATCH_BYTES` of them, whichever
comes first), which bounds memory whatever the file's size. After each batch is stored, the
offset reached is written to the database (monitor.db.archives), so an interrupted run resumes
there; the few records it reads again are seen entries and store nothing twice.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from monitor._types import FeedEntry, FetchResult
from monitor.config import Settings
from monitor.db.archives import ArchiveProgress, load_progress, save_progress
from monitor.pipeline import PassSummary, Pipeline
from monitor.warc import ArchivedPage, WarcCounts, read_warc

log = logging.getLogger("monitor.ingest")

ORIGIN_PREFIX = "warc:"
# Enough pages per batch that extraction rarely waits at a batch's end, few enough that a
# batch's pages stay a small part of the memory budget.
_BATCH_PAGES = 256
_BATCH_BYTES = 32 * 1024 * 1024
_FINGERPRINT_BYTES = 64 * 1024


@dataclass
class IngestReport:
    """What an ingest did; `line()` is the summary printed at the end."""

    files: int = 0
    files_resumed: int = 0
    counts: WarcCounts = field(default_factory=WarcCounts)
    summary: PassSummary = field(default_factory=PassSummary)
    started: float = field(default_factory=time.monotonic)
    failed_files: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def pages_per_second(self) -> float:
        return self.counts.pages / self.seconds if self.seconds > 0 else 0.0

    def progress(self) -> str:
        return (f"{self.counts.records} records, {self.counts.pages} pages ({self.pages_per_second():.1f}/s), "
                f"{self.summary.new_articles} new articles, {self.summary.new_matches} new matches")

    def line(self) -> str:
        s, c = self.summary, self.counts
        stories = ", ".join(f"{k} {v}" for k, v in sorted(s.matches_by_story.items()))
        return (f"{'stopped' if s.stopped else 'ingest done'} in {self.seconds:.1f}s: {self.files} files"
                f"{f' ({self.files_resumed} resumed)' if self.files_resumed else ''}"
                f"{f', {len(self.failed_files)} unreadable' if self.failed_files else ''}; "
                f"{c.records} records, {c.pages} pages ({self.pages_per_second():.1f}/s); skipped: {c.skipped()}; "
                f"{s.new_articles} new articles, {s.new_matches} new matches{f' ({stories})' if stories else ''}")


def ingest_warcs(settings: Settings, store: Any, stories: Sequence[Any], paths: Sequence[Path], *,
                 since: datetime | None = None, until: datetime | None = None,
                 stop: threading.Event | None = None,
                 progress: Callable[[IngestReport], None] | None = None) -> IngestReport:
    """Ingest the HTML responses of the WARC files `paths`, each from where an earlier run stopped."""
    from monitor.daemon import matcher_for

    stop = stop or threading.Event()
    report = IngestReport()
    with Pipeline(settings, store, matcher_for(store, stories)) as pipeline:
        for path in paths:
            if stop.is_set():
                break
            try:
                _ingest_file(pipeline, store, path.resolve(), report, since, until, stop, progress)
            except OSError as e:
                log.error("%s: cannot be read: %s", path, e.strerror or e)
                report.failed_files.append(str(path))
    report.summary.stopped = stop.is_set()
    return report


def _ingest_file(pipeline: Pipeline, store: Any, path: Path, report: IngestReport,
                 since: datetime | None, until: datetime | None, stop: threading.Event,
                 progress: Callable[[IngestReport], None] | None) -> None:
    fingerprint = _fingerprint(path)
    done = load_progress(store.engine, str(path))
    if done is not None and done.fingerprint != fingerprint:
        log.warning("%s: not the file ingested under this name before; reading it from the start", path)
        done = None
    done = done or ArchiveProgress(str(path), fingerprint, 0, 0, 0)
    report.files += 1
    if done.offset:
        report.files_resumed += 1
        log.info("%s: resuming at offset %d (%d records read before)", path, done.offset, done.records)
    feed = store.add_feed(f"{ORIGIN_PREFIX}{path.name}", source="warc", enabled=False)
    counts = WarcCounts()
    batch: list[ArchivedPage] = []
    batch_bytes, offset = 0, done.offset

    def flush() -> bool:
        nonlocal batch, batch_bytes, done
        if batch:
            entries = [FeedEntry(key=p.record_id, link=p.fetched.url) for p in batch]
            pages: dict[str, FetchResult] = {p.record_id: p.fetched for p in batch}
            summary = pipeline.ingest(feed, entries, stop=stop, pages=pages)
            summary.stopped = False      # the report says whether the ingest stopped
            report.summary.add(summary)
            if stop.is_set():
                return False             # not all stored: the offset stays where it was
        report.counts.add(counts)
        done = ArchiveProgress(done.path, fingerprint, offset, done.records + counts.records,
                               done.pages + counts.pages)
        save_progress(store.engine, done, datetime.now(timezone.utc))
        counts.clear()
        batch, batch_bytes = [], 0
        if progress is not None:
            progress(report)
        return True

    for record in read_warc(path, start=done.offset, max_bytes=pipeline.settings.fetch.max_page_bytes,
                            counts=counts, since=since, until=until):
        offset = record.end
        if record.page is not None:
            batch.append(record.page)
            batch_bytes += len(record.page.fetched.body)
        if len(batch) >= _BATCH_PAGES or batch_bytes >= _BATCH_BYTES or counts.records >= 16 * _BATCH_PAGES:
            if not flush() or stop.is_set():
                return
    flush()


def _fingerprint(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(_FINGERPRINT_BYTES)).hexdigest()
