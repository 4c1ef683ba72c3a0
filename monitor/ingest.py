"""Coverage already published, brought in through the pipeline a poll uses: web archives (WARC),
sitemaps and URL lists.

Each HTML response of an archive is handed to `Pipeline.ingest` as an entry whose page is
fetched already, so it takes a polled page's path: dedup by canonical URL, extraction, matching,
storage. The entries are recorded under a disabled feed named `warc:FILE` (the name of the
file), which is how an article says where it came from; `monitor run` never fetches it.

Records go to the pipeline in batches (`_BATCH_PAGES` pages or `_BATCH_BYTES` of them, whichever
comes first), which bounds memory whatever the file's size. After each batch is stored, the
offset reached is written to the database (monitor.db.archives), so an interrupted run resumes
there; the few records it reads again are seen entries and store nothing twice.

Sitemaps and URL lists name pages without their bytes: their URLs are handed to
`Pipeline.ingest` as entries (feed `sitemap:URL` or `urls:FILE-NAME`), so the pages are fetched
by the guarded fetcher, with the per-host limits and deadlines of a poll. A URL seen before is
skipped, so running the same list again fetches nothing.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from monitor._types import FeedEntry, FetchResult
from monitor.config import Settings
from monitor.db.archives import ArchiveProgress, load_progress, save_progress
from monitor.db.store import Store
from monitor.exceptions import MonitorError, ParseError
from monitor.feeds import declares_entities, parse_feed
from monitor.pipeline import PassSummary, Pipeline, page_fetcher
from monitor.runtime import Runtime
from monitor.urls import canonicalize, is_http_url
from monitor.warc import FEED_TYPES, ArchivedPage, WarcCounts, read_warc

log = logging.getLogger("monitor.ingest")

ORIGIN_PREFIX = "warc:"
# Enough pages per batch that extraction rarely waits at a batch's end, few enough that a
# batch's pages stay a small part of the memory budget.
_BATCH_PAGES = 256
_BATCH_BYTES = 32 * 1024 * 1024
_FINGERPRINT_BYTES = 64 * 1024
_MAX_SITEMAPS = 1000      # sitemaps read from one index, nested ones included
_SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, */*;q=0.5"


@dataclass
class IngestReport:
    """What an ingest did; `line()` is the summary printed at the end."""

    files: int = 0
    files_resumed: int = 0
    counts: WarcCounts = field(default_factory=WarcCounts)
    summary: PassSummary = field(default_factory=PassSummary)
    started: float = field(default_factory=time.monotonic)
    failed_files: list[str] = field(default_factory=list)
    kind: str = "warc"            # "warc", or "urls" for sitemaps and URL lists
    listed: int = 0               # URLs listed (sitemaps, URL lists)
    not_urls: int = 0             # listed lines that are not http(s) URLs
    sitemaps: int = 0             # sitemaps read
    sitemaps_failed: int = 0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def pages_per_second(self) -> float:
        return self.counts.pages / self.seconds if self.seconds > 0 else 0.0

    def progress(self) -> str:
        if self.kind == "urls":
            return (f"{self.listed} URLs, {self.summary.new_articles} new articles, "
                    f"{self.summary.pages_failed} pages failed, {self.summary.new_matches} new matches")
        return (f"{self.counts.records} records, {self.counts.pages} pages ({self.pages_per_second():.1f}/s), "
                f"{self.summary.new_articles} new articles, {self.summary.new_matches} new matches")

    def line(self) -> str:
        s, c = self.summary, self.counts
        stories = ", ".join(f"{k} {v}" for k, v in sorted(s.matches_by_story.items()))
        if self.kind == "urls":
            skipped = [(self.not_urls, "not http(s) URLs"), (c.out_of_window, "outside the window"),
                       (self.sitemaps_failed, "sitemaps unreadable")]
            return (f"{'stopped' if s.stopped else 'ingest done'} in {self.seconds:.1f}s: "
                    f"{f'{self.sitemaps} sitemaps, ' if self.sitemaps else ''}{self.listed} URLs; skipped: "
                    f"{', '.join(f'{n} {what}' for n, what in skipped if n) or 'none'}; {s.new_articles} new articles, "
                    f"{s.pages_failed} pages failed; {s.new_matches} new matches{f' ({stories})' if stories else ''}")
        return (f"{'stopped' if s.stopped else 'ingest done'} in {self.seconds:.1f}s: {self.files} files"
                f"{f' ({self.files_resumed} resumed)' if self.files_resumed else ''}"
                f"{f', {len(self.failed_files)} unreadable' if self.failed_files else ''}; "
                f"{c.records} records, {c.pages} pages ({self.pages_per_second():.1f}/s); skipped: {c.skipped()}; "
                f"{s.new_articles} new articles, {s.new_matches} new matches{f' ({stories})' if stories else ''}")


def ingest_warcs(runtime: Runtime, paths: Sequence[Path], *,
                 since: datetime | None = None, until: datetime | None = None,
                 stop: threading.Event | None = None,
                 progress: Callable[[IngestReport], None] | None = None) -> IngestReport:
    """Ingest the HTML responses of the WARC files `paths`, each from where an earlier run stopped."""
    store = runtime.store
    stop = stop or threading.Event()
    report = IngestReport()
    with runtime.pipeline() as pipeline:
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


def _ingest_file(pipeline: Pipeline, store: Store, path: Path, report: IngestReport,
                 since: datetime | None, until: datetime | None, stop: threading.Event,
                 progress: Callable[[IngestReport], None] | None) -> None:
    fingerprint = _fingerprint(path)
    before = load_progress(store, str(path))
    if before is not None and before.fingerprint != fingerprint:
        log.warning("%s: not the file ingested under this name before; reading it from the start", path)
        before = None
    done = before or ArchiveProgress(str(path), fingerprint, 0, 0, 0)
    report.files += 1
    if done.offset:
        report.files_resumed += 1
        log.info("%s: resuming at offset %d (%d records read before)", path, done.offset, done.records)
    feed = store.add_feed(f"{ORIGIN_PREFIX}{path.name}", source="warc", enabled=False)
    archived = archived_entries(path, pipeline.settings.fetch.max_feed_bytes)
    counts = WarcCounts()
    batch: list[ArchivedPage] = []
    batch_bytes, offset = 0, done.offset

    def flush() -> bool:
        nonlocal batch, batch_bytes, done
        if batch:
            entries = [_entry(p, archived) for p in batch]
            pages: dict[str, FetchResult] = {p.record_id: p.fetched for p in batch}
            summary = pipeline.ingest(feed, entries, stop=stop, pages=pages)
            summary.stopped = False      # the report says whether the ingest stopped
            report.summary.add(summary)
            if stop.is_set():
                return False             # not all stored: the offset stays where it was
        report.counts.add(counts)
        done = ArchiveProgress(done.path, fingerprint, offset, done.records + counts.records,
                               done.pages + counts.pages)
        save_progress(store, done, datetime.now(UTC))
        counts.clear()
        batch, batch_bytes = [], 0
        if progress is not None:
            progress(report)
        return True

    for record in read_warc(path, start=done.offset, max_bytes=pipeline.settings.fetch.max_page_bytes,
                            counts=counts, since=since, until=until):
        offset = max(offset, record.end)     # the offset reached only ever grows
        if record.page is not None:
            batch.append(record.page)
            batch_bytes += len(record.page.fetched.body)
        if len(batch) >= _BATCH_PAGES or batch_bytes >= _BATCH_BYTES or counts.records >= 16 * _BATCH_PAGES:
            if not flush() or stop.is_set():
                return
    flush()


def archived_entries(path: Path, max_bytes: int) -> dict[str, FeedEntry]:
    """Canonical link -> the entry of a feed archived in the same file (its title, summary, date,
    author), so that a page archived with its feed is stored as a poll of that feed stores it."""
    found: dict[str, FeedEntry] = {}
    feeds = 0
    for record in read_warc(path, max_bytes=max_bytes, counts=WarcCounts(), types=FEED_TYPES):
        if record.page is None:
            continue
        fetched = record.page.fetched
        if declares_entities(fetched.body):
            continue        # refused as a poll refuses it
        try:
            parsed = parse_feed(fetched.body, url=fetched.url, headers=fetched.headers)
        except ParseError as e:     # one unreadable feed costs only its own entries
            log.info("%s: archived feed %s not read: %s", path.name, fetched.url, e)
            continue
        feeds += 1
        for entry in parsed.entries:
            if entry.link:
                found.setdefault(canonicalize(entry.link), entry)
    if feeds:
        log.info("%s: %d archived feeds give %d entries their title, summary and date", path.name, feeds, len(found))
    return found


def _entry(page: ArchivedPage, archived: dict[str, FeedEntry]) -> FeedEntry:
    """The entry a page is stored under: its archived feed's, when the archive holds one."""
    known = archived.get(canonicalize(page.fetched.url))
    if known is None:
        return FeedEntry(key=page.record_id, link=page.fetched.url)
    return replace(known, key=page.record_id, link=page.fetched.url)


def _fingerprint(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(_FINGERPRINT_BYTES)).hexdigest()


def ingest_urls(runtime: Runtime, urls: Iterable[str], *, origin: str,
                report: IngestReport | None = None, stop: threading.Event | None = None,
                progress: Callable[[IngestReport], None] | None = None) -> IngestReport:
    """Fetch and ingest the pages at `urls` (lines that are not http(s) URLs are counted and
    skipped), recorded under the disabled feed `origin`."""
    stop = stop or threading.Event()
    report = report or IngestReport(kind="urls")
    feed = runtime.store.add_feed(origin, source="urls", enabled=False)
    with runtime.pipeline() as pipeline:
        batch: list[FeedEntry] = []

        def flush() -> None:
            if batch and not stop.is_set():
                summary = pipeline.ingest(feed, batch, stop=stop)
                summary.stopped = False
                report.summary.add(summary)
                batch.clear()
                if progress is not None:
                    progress(report)

        for line in urls:
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            if not is_http_url(url):
                report.not_urls += 1
                continue
            report.listed += 1
            batch.append(FeedEntry(key=url, link=url))
            if len(batch) >= _BATCH_PAGES:
                flush()
            if stop.is_set():
                break
        flush()
    report.summary.stopped = stop.is_set()
    return report


def sitemap_urls(settings: Settings, url: str, report: IngestReport, *, since: datetime | None = None,
                 until: datetime | None = None) -> list[str]:
    """The page URLs that the sitemap at `url` lists (sitemap indexes followed), dated in [since, until)
    by news:publication_date, else lastmod (undated pages are left out when either is given);
    fetched by the guarded fetcher. An unreadable sitemap is counted and logged; an unreadable
    first one raises (nothing to ingest)."""
    from monitor.sitemaps import parse_sitemap

    max_bytes = settings.fetch.max_feed_bytes
    fetcher = page_fetcher(settings)
    pages: dict[str, None] = {}
    todo, seen = [url], {url}
    try:
        while todo and report.sitemaps < _MAX_SITEMAPS:
            current = todo.pop(0)
            try:
                fetched = fetcher.fetch(current, accept=_SITEMAP_ACCEPT, max_bytes=max_bytes)
                sitemap = parse_sitemap(fetched.body, source=current, max_bytes=max_bytes)
            except MonitorError as e:
                if current == url:
                    raise
                report.sitemaps_failed += 1
                log.warning("sitemap skipped: %s", e)
                continue
            report.sitemaps += 1
            for child in sitemap.sitemaps:
                if child.url not in seen:
                    seen.add(child.url)
                    todo.append(child.url)
            for entry in sitemap.pages:
                if (since is not None or until is not None) and (
                        entry.date is None or (since is not None and entry.date < since)
                        or (until is not None and entry.date >= until)):
                    report.counts.out_of_window += 1
                    continue
                pages.setdefault(entry.url)
    finally:
        fetcher.close()
    if todo:
        log.warning("%s: more than %d sitemaps; the rest are not read", url, _MAX_SITEMAPS)
    return list(pages)
