"""One pass of the monitor: feeds in, articles and matches stored.

The phases, each a separate module, pass frozen values (monitor._types):

    fetch feed -> parse feed -> new entries -> fetch page -> extract -> article -> match -> store

Fetching runs in a thread pool (bounded overall and per host by the fetcher), extraction in a
process pool (it is the dominant CPU cost, and a process can be abandoned: a page whose
extraction outlasts `extract.timeout` is given up, its worker replaced, and its article stored
from the feed's own text), and every database write happens on the calling thread, in batches:
finished articles (each with its matches and entries) and then the results of the feeds they
finished, one transaction per batch of up to `_BATCH_SIZE` articles (`_FEED_BATCH_SIZE` feed
results) or `_BATCH_SECONDS`. A feed's validators (ETag, Last-Modified) are stored only once all
its new entries are safely stored, so a crash or a stop never turns unprocessed entries into a
304. Pages are fetched a bounded way ahead of extraction (`_PAGES_AHEAD`, `_BYTES_AHEAD`), handed
to the fetch threads host by host (`_PageQueue`); one check takes at most `fetch.max_new_entries`
of a feed's new entries, newest first, and leaves the rest, unrecorded, for the next checks.
When each feed is checked next, and whether with its validators, is `monitor.schedule`'s call.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from queue import Empty, SimpleQueue
from typing import Any
from urllib.parse import urlsplit

from monitor._types import Article, ExtractedPage, FeedEntry, FeedState, FetchResult, MatchResult, ParsedFeed
from monitor.config import Settings
from monitor.db.leases import Claim, release_many, renew
from monitor.db.polling import load_poll_states, moved_to, record_move, write_poll_states
from monitor.db.store import ArticleWrite, FeedResult, Store
from monitor.db.story_state import record_learning
from monitor.exceptions import FetchError, HTTPStatusError, MonitorError, ParseError
from monitor.fetch import Fetcher, FetchPolicy, cache_max_age
from monitor.lifeline import follow
from monitor.matching import Matcher
from monitor.schedule import CheckOutcome, PollState, next_check
from monitor.urls import canonicalize
from monitor.wording import plural

log = logging.getLogger("monitor.pipeline")

_HTML_TYPES = {"text/html", "application/xhtml+xml", "text/plain", ""}
_FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
# Writes are batched: a transaction per article (or per unchanged feed) costs more than the
# article's own rows. A batch is written when it holds this many articles, or this many seconds
# after its first one, or when nothing else is left to wait for.
_BATCH_SIZE = 50
_FEED_BATCH_SIZE = 500     # feed results are small rows: a pass over 1,000 unchanged feeds writes a few
_BATCH_SECONDS = 0.2
# How long the pass waits for a task at a time before looking at stop, leases and slow extractions.
_POLL_SECONDS = 0.5
# Pages are fetched at most this far ahead of extraction, in number and in bytes: a feed with
# thousands of new entries must not hold all their pages in memory. Far enough that extraction
# never waits for a fetch (a shorter lead, 64 or 256 pages, made a 2-core pass 5-10% slower).
_PAGES_AHEAD = 1024
_BYTES_AHEAD = 256 * 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassSummary:
    """What a pass did; `line()` is the one-line summary printed at the end of `run --once`."""

    feeds: int = 0
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    new_entries: int = 0
    new_articles: int = 0
    from_feed_text: int = 0
    pages_failed: int = 0
    new_matches: int = 0
    rule_errors: int = 0
    extractions_abandoned: int = 0
    entries_deferred: int = 0     # new entries over fetch.max_new_entries, left for later checks
    feeds_leased_elsewhere: int = 0   # left to the other daemons that hold them (PostgreSQL)
    stopped: bool = False
    seconds: float = 0.0
    matches_by_story: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: PassSummary) -> None:
        """Count `other` in too (several ingests summed up as one)."""
        for name in ("feeds", "feeds_ok", "feeds_not_modified", "feeds_failed", "new_entries", "new_articles",
                     "from_feed_text", "pages_failed", "new_matches", "rule_errors", "extractions_abandoned",
                     "entries_deferred", "feeds_leased_elsewhere"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        for story, n in other.matches_by_story.items():
            self.matches_by_story[story] += n

    def line(self) -> str:
        stories = ", ".join(f"{k} {v}" for k, v in sorted(self.matches_by_story.items()))
        tail = [text for count, text in (
            (self.rule_errors, plural(self.rule_errors, "rule error")),
            (self.extractions_abandoned, plural(self.extractions_abandoned, "extraction") + " abandoned"),
            (self.entries_deferred, plural(self.entries_deferred, "new entry", "new entries") + " left for later passes"),
            (self.feeds_leased_elsewhere, plural(self.feeds_leased_elsewhere, "feed") + " left to the daemons holding them"),
        ) if count]
        return (f"{'stopped' if self.stopped else 'pass done'} in {self.seconds:.1f}s: feeds {self.feeds_ok} ok, "
                f"{self.feeds_not_modified} unchanged, {self.feeds_failed} failed; {plural(self.new_articles, 'new article')}"
                f"{f' ({self.from_feed_text} from feed text)' if self.from_feed_text else ''}, "
                f"{plural(self.pages_failed, 'page')} failed; {plural(self.new_matches, 'new match')}"
                f"{f' ({stories})' if stories else ''}"
                + "".join("; " + text for text in tail))


@dataclass(frozen=True, slots=True)
class _FeedCheck:
    """The outcome of fetching and parsing one feed (computed in a worker thread)."""

    feed: FeedState
    fetched: FetchResult | None = None
    parsed: ParsedFeed | None = None
    error: MonitorError | None = None
    poll: PollState = PollState()
    external: bool = False        # entries handed over by another aggregator, not fetched by us
    pages: Mapping[str, FetchResult] | None = None    # entries' pages fetched already (by entry key)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A new entry whose page we will fetch, and everything needed to store it."""

    feed: FeedState
    feed_title: str
    entry: FeedEntry
    url: str                 # canonical
    link: str                # as given by the feed
    failed_before: bool = False   # earlier passes recorded failed fetches of the page
    external: bool = False        # handed over by another aggregator: no later pass will retry it
    page: FetchResult | None = None   # the page, fetched already (a web archive's record)


@dataclass
class _Extraction:
    """A page handed to the extraction pool; its time limit runs from when a worker takes it."""

    cand: _Candidate
    fetched: FetchResult
    since: float | None = None    # monotonic time it was first seen running
    lost: int = 0                 # times a dying worker took it down (it is tried again once)


@dataclass(frozen=True, slots=True)
class _Ready:
    """An article built and matched, waiting for the next batch write."""

    cand: _Candidate
    article: Article
    results: list[MatchResult]
    clear_failure: bool


class _Tasks:
    """The pass's work in flight: feed checks and page fetches (threads), extractions (processes).

    Each future reports itself done on a queue, so waiting for the next one costs the same with
    ten tasks in flight or ten thousand (`concurrent.futures.wait` walks them all every time).
    """

    def __init__(self) -> None:
        self._tasks: dict[Future[Any], tuple[str, Any]] = {}
        self.extractions: dict[Future[Any], _Extraction] = {}    # in the order they were handed to the pool
        self.pages = 0          # pages being fetched or extracted: what holds page bodies in memory
        self.page_bytes = 0     # the bodies of the pages waiting for or in extraction
        self._done: SimpleQueue[Future[Any]] = SimpleQueue()

    def add(self, fut: Future[Any], kind: str, ctx: Any) -> None:
        self._tasks[fut] = (kind, ctx)
        if kind == "extract":
            self.extractions[fut] = ctx
            self.page_bytes += len(ctx.fetched.body)
        self.pages += kind != "feed"
        fut.add_done_callback(self._done.put)

    def pop(self, fut: Future[Any]) -> tuple[str, Any]:
        kind, ctx = self._tasks.pop(fut)
        if kind == "extract":
            del self.extractions[fut]
            self.page_bytes -= len(ctx.fetched.body)
        self.pages -= kind != "feed"
        return kind, ctx

    def finished(self, timeout: float) -> list[Future[Any]]:
        """The tasks done since the last call, waiting up to `timeout` seconds for the first.
        Futures no longer tracked (abandoned, cancelled) are left out."""
        done: list[Future[Any]] = []
        try:
            done.append(self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait())
            while True:
                done.append(self._done.get_nowait())
        except Empty:
            pass
        return [fut for fut in done if fut in self._tasks]

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Future[Any]]:
        return iter(list(self._tasks))


@dataclass
class _FeedProgress:
    """Entries of one feed still being processed; the feed's result is recorded when it reaches 0."""

    check: _FeedCheck
    pending: int = 0
    retry_later: bool = False     # some page failed and will be retried: keep the old validators
    new_entries: int = 0          # entries the feed had not shown before (the policy's measure of pace)
    deferred: int = 0             # new entries over the per-check bound: not recorded, so seen again next check


class Pipeline:
    """The runtime of the monitor: settings, store, fetcher, stories and worker pools."""

    def __init__(self, settings: Settings, store: Store, matcher: Matcher,
                 *, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.matcher = matcher
        self._progress = progress
        self.fetcher = page_fetcher(settings)
        self._threads = ThreadPoolExecutor(max_workers=max(1, settings.fetch.concurrency), thread_name_prefix="fetch")
        self._extractors: ProcessPoolExecutor | None = None
        self._workers: int | None = None
        self._rng = random.Random()     # the jitter of retries (seeding one per feed costs more)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop at once: fetches in flight fail within a fraction of a second, extraction workers end."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._extractors is not None:
            _terminate(self._extractors)
            self._extractors = None
        self.fetcher.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _extract_pool(self) -> ProcessPoolExecutor:
        """The process pool for extraction, started on first use (also for one worker: a process
        stuck on a pathological page can be ended, a thread could not)."""
        workers = self._extract_workers()
        if self._extractors is None:
            # forkserver: workers fork from a clean server that has trafilatura imported once,
            # never from this process with its fetcher threads and open database connections.
            ctx = multiprocessing.get_context("forkserver")
            from monitor.extract import EXTRACTION_MODULES

            ctx.set_forkserver_preload(list(EXTRACTION_MODULES))
            # Each worker ends with this process, even when it is killed with SIGKILL (it never
            # gets to close the pool); the forkserver and resource tracker then end too.
            self._extractors = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                   initializer=follow, initargs=(os.getpid(),))
        return self._extractors

    def _extract_workers(self) -> int:
        if self._workers is None:
            self._workers = self.settings.extract.workers or os.cpu_count() or 1
        return self._workers

    # -- the pass --------------------------------------------------------------------------

    def run_pass(self, feeds: Sequence[FeedState], *, stop: threading.Event | None = None,
                 claims: Sequence[Claim] = ()) -> PassSummary:
        """Check `feeds`, store every new article and match. Never raises for a bad feed or page.

        With `claims` (leases on the feeds, when several daemons share the database) the leases are
        renewed while the pass works, and each feed's result is written only while its lease is
        still held; feeds left unfinished by a stop are handed back.
        """
        self._leases = _Leases(self.store, claims, self.settings.schedule.lease)
        feeds = self._skip_moved(feeds)
        polls = load_poll_states(self.store, [feed.id for feed in feeds])
        return self._drive(hosts_in_turn(feeds),
                           lambda feed: self._threads.submit(self._check_feed, feed, polls.get(feed.id, PollState())),
                           stop or threading.Event())

    def ingest(self, feed: FeedState, entries: Sequence[FeedEntry], *, title: str | None = None,
               stop: threading.Event | None = None, pages: Mapping[str, FetchResult] | None = None) -> PassSummary:
        """Process entries another aggregator fetched (reader, Miniflux) as a pass processes a
        feed's entries: the same dedup, page fetch, extraction, matching and storage.

        The feed itself is not fetched and its schedule is left alone. Entries already seen are
        skipped, so handing the same entries over twice stores nothing twice. A page that cannot
        be fetched is not retried later (the aggregator will not hand the entry over again): the
        article is stored at once from the entry's own text.

        `pages` holds pages fetched already, by entry key (a web archive's records): those are not
        fetched again, and go straight to extraction; their FetchResult.date is the article's
        first-seen time.
        """
        self._leases = _Leases(self.store, (), self.settings.schedule.lease)
        parsed = ParsedFeed(title=title or feed.title or "", link=None, entries=tuple(entries))
        done: Future[_FeedCheck] = Future()
        done.set_result(_FeedCheck(feed, parsed=parsed, external=True, pages=pages))
        return self._drive([feed], lambda _feed: done, stop or threading.Event())

    def _drive(self, feeds: Sequence[FeedState], start_check: Callable[[FeedState], Future[Any]],
               stop: threading.Event) -> PassSummary:
        """Check `feeds` (`start_check` starts one) to the end: their new entries' pages fetched, extracted,
        matched and stored, each feed's result recorded once all its entries are safe."""
        started = time.monotonic()
        summary = PassSummary(feeds=len(feeds))
        errors_before = self.matcher.rule_errors
        tasks = _Tasks()
        # Feed checks are started a few at a time, not all at once: 100,000 queued futures took
        # hundreds of MiB, and every page fetch of the pass waited behind all of them.
        unstarted = deque(feeds)
        feeds_ahead = 4 * max(1, self.settings.fetch.concurrency)
        progress: dict[int, _FeedProgress] = {}
        in_pass: set[str] = set()                  # canonical URLs being fetched this pass
        retries = self.store.page_failure_attempts
        max_attempts = max(1, self.settings.fetch.page_retries)
        ticker = _Ticker(self._progress, len(feeds))
        self._ready: list[_Ready] = []
        self._ready_since: float | None = None
        to_fetch = _PageQueue(max(1, self.settings.fetch.per_host))   # pages waiting for room among those in flight

        while (len(tasks) or to_fetch or unstarted) and not stop.is_set():
            while unstarted and len(tasks) - tasks.pages < feeds_ahead:
                feed = unstarted.popleft()
                tasks.add(start_check(feed), "feed", feed)
            for fut in tasks.finished(self._wait_seconds()):
                kind, ctx = tasks.pop(fut)
                try:
                    if kind == "feed":
                        ticker.feed_done()
                        check: _FeedCheck = fut.result()
                        fp = _FeedProgress(check)
                        progress[check.feed.id] = fp
                        for cand in self._new_candidates(fp, summary, in_pass, retries, max_attempts):
                            fp.pending += 1
                            ticker.page_queued()
                            if cand.page is not None:
                                self._page_arrived(cand, cand.page, tasks, summary, progress, max_attempts)
                            else:
                                to_fetch.add(cand)
                        if fp.pending == 0:
                            self._finish_feed(fp, summary)
                    elif kind == "page":
                        to_fetch.done(ctx)
                        self._page_fetched(fut, ctx, tasks, summary, progress, max_attempts)
                    else:  # "extract"
                        job: _Extraction = ctx
                        try:
                            page = fut.result()
                        except BrokenProcessPool as e:   # a worker died (killed, out of memory)
                            if job.lost == 0:
                                job.lost, job.since = 1, None
                                self._submit_extraction(job, tasks)
                                continue
                            log.warning("extraction failed for %s: %s", job.fetched.final_url, e)
                            page = ExtractedPage(body="")
                        except Exception as e:  # a dead worker must not stop the pass
                            log.warning("extraction failed for %s: %s", job.fetched.final_url, e)
                            page = ExtractedPage(body="")
                        self._store_candidate(job.cand, summary, progress, fetched=job.fetched, page=page)
                except Exception:
                    # A bug in handling one feed or page is logged with its context, never fatal.
                    log.exception("unexpected error while handling %s %s", kind, _describe(ctx))
                    if kind != "feed":
                        self._release(ctx.cand if kind == "extract" else ctx, summary, progress, retry=True)
            self._abandon_slow_extractions(tasks, summary, progress)
            while tasks.pages < _PAGES_AHEAD and tasks.page_bytes < _BYTES_AHEAD:
                cand = to_fetch.take()
                if cand is None:
                    break
                tasks.add(self._threads.submit(self._fetch_page, cand.link), "page", cand)
            if self._batch_due() or not len(tasks):
                self._flush(summary, progress)
            self._leases.maybe_renew()
            ticker.maybe_report(summary)

        if stop.is_set() and (len(tasks) or to_fetch or unstarted):
            summary.stopped = True
            for fut in tasks:
                fut.cancel()
            log.info("stop requested: %d unfinished tasks abandoned; they run again next time",
                     len(tasks) + len(to_fetch) + len(unstarted))
        # What is finished is stored, also when stopping: each article is whole, and a feed's
        # result is written only when every one of its entries is.
        self._flush(summary, progress)
        self._leases.hand_back_unfinished()
        summary.rule_errors = self.matcher.rule_errors - errors_before
        summary.seconds = time.monotonic() - started
        return summary

    def _wait_seconds(self) -> float:
        """How long to wait for the next finished task: until the pending batch is due, at most."""
        oldest = self._oldest_unwritten()
        if oldest is None:
            return _POLL_SECONDS
        return max(0.0, min(_POLL_SECONDS, oldest + _BATCH_SECONDS - time.monotonic()))

    def _batch_due(self) -> bool:
        if len(self._ready) >= _BATCH_SIZE or len(self._leases.pending) >= _FEED_BATCH_SIZE:
            return True
        oldest = self._oldest_unwritten()
        return oldest is not None and time.monotonic() - oldest >= _BATCH_SECONDS

    def _oldest_unwritten(self) -> float | None:
        """When the oldest article or feed result still waiting to be written was ready."""
        times = [t for t in (self._ready_since, self._leases.pending_since) if t is not None]
        return min(times) if times else None

    # -- feeds -----------------------------------------------------------------------------

    def _skip_moved(self, feeds: Sequence[FeedState]) -> list[FeedState]:
        """`feeds` without those whose URL moved permanently to a feed stored under the new URL.

        Such a feed is the configuration still naming the old address: it is disabled with a
        note that says where the feed is checked now, and never fetched again.
        """
        moves = moved_to(self.store, [feed.url for feed in feeds])
        kept: list[FeedState] = []
        for feed in feeds:
            new = moves.get(feed.url)
            if new is None or self.store.get_feed(new) is None:
                kept.append(feed)
                continue
            note = f"{feed.url}: moved permanently to {new}, which is checked instead; update the configuration"
            log.warning("%s", note)
            now = utcnow()
            self.store.record_feed_result(feed.id, fetched_at=now, status="moved", error=note, error_count=0,
                                          next_due_at=now)
            self.store.set_feed_enabled(feed.url, False)
        return kept

    def _check_feed(self, feed: FeedState, poll: PollState) -> _FeedCheck:
        """Fetch and parse one feed (worker thread). Failures are returned, not raised."""
        conditional = not poll.revalidate
        if not conditional and (feed.etag or feed.last_modified):
            log.info("%s: answered 304 for a long time; asking once without validators", feed.url)
        try:
            fetched = self.fetcher.fetch(feed.url, etag=feed.etag if conditional else None,
                                         last_modified=feed.last_modified if conditional else None,
                                         accept=_FEED_ACCEPT, max_bytes=self.settings.fetch.max_feed_bytes)
        except FetchError as e:
            return _FeedCheck(feed, error=e, poll=poll)
        if fetched.not_modified:
            return _FeedCheck(feed, fetched=fetched, poll=poll)
        from monitor.feeds import parse_feed  # feedparser: not needed by a pass of 304s

        try:
            parsed = parse_feed(fetched.body, url=fetched.final_url, headers=fetched.headers,
                                max_bytes=self.settings.fetch.max_feed_bytes)
        except ParseError as e:
            return _FeedCheck(feed, fetched=fetched, error=e, poll=poll)
        return _FeedCheck(feed, fetched=fetched, parsed=parsed, poll=poll)

    def _new_candidates(self, fp: _FeedProgress, summary: PassSummary, in_pass: set[str],
                        retries: Callable[[Sequence[str]], dict[str, int]], max_attempts: int) -> list[_Candidate]:
        """The entries of a fetched feed that need their page fetched; records the rest."""
        check = fp.check
        feed, parsed = check.feed, check.parsed
        if parsed is None or check.error is not None:
            return []
        if parsed.is_html:
            return []
        now = utcnow()
        keys = [e.key for e in parsed.entries]
        unseen = self.store.unseen_entry_keys(feed.id, keys)
        entries = [e for e in parsed.entries if e.key in unseen]
        # a feed that lists the same entry twice is one entry
        entries = newest_first(list({e.key: e for e in reversed(entries)}.values())[::-1])
        # Entries handed over by an aggregator are not offered again: those are all taken.
        bound = self.settings.fetch.max_new_entries if not check.external else 0
        summary.new_entries += len(entries)
        by_url = {e.key: canonicalize(e.link) for e in entries if e.link}
        known = self.store.known_article_urls(set(by_url.values()))
        attempts = retries(list(set(by_url.values()) - known))
        settled: list[tuple[str, str | None]] = []
        cands: list[_Candidate] = []
        fp.new_entries = len(entries)
        pages = check.pages or {}
        # An archive is no outlet: its pages name their own (else their host stands for it).
        title = feed.title or parsed.title or ("" if pages else urlsplit(feed.url).hostname or feed.url)
        for e in entries:
            url = by_url.get(e.key)
            page = pages.get(e.key)
            if url is None:
                log.info("%s: entry %r has no usable link; recorded, not stored", feed.url, e.title or e.key)
                settled.append((e.key, None))
            elif url in known or url in in_pass:
                settled.append((e.key, url))     # the same article, seen through another feed
            elif attempts.get(url, 0) >= max_attempts and page is None:
                settled.append((e.key, url))     # given up on earlier passes
            elif 0 < bound <= len(cands):
                # Left unrecorded, so the next check sees it as new again (and takes it then).
                fp.deferred += 1
            else:
                in_pass.add(url)
                cands.append(_Candidate(feed, title, e, url, e.link or url, failed_before=url in attempts,
                                        external=check.external, page=page))
        if settled:
            self.store.record_entries(feed.id, settled, now)
        if fp.deferred:
            summary.entries_deferred += fp.deferred
            log.info("%s: %d new entries, %d taken this pass (fetch.max_new_entries), %d left for the next",
                     feed.url, len(entries), len(cands), fp.deferred)
        return cands

    def _finish_feed(self, fp: _FeedProgress, summary: PassSummary) -> None:
        """Record the outcome of a feed check and schedule the next one."""
        check, feed, now = fp.check, fp.check.feed, utcnow()
        if check.external:
            summary.feeds_ok += 1      # the aggregator owns this feed's schedule
            return
        error, fetched, parsed = check.error, check.fetched, check.parsed
        status_code = fetched.status if fetched else (error.status if isinstance(error, HTTPStatusError) else None)
        if error is None and parsed is not None and parsed.is_html:
            hint = f" - it names these feeds: {', '.join(parsed.alternates[:3])}" if parsed.alternates else ""
            error = ParseError(feed.url, f"this is an HTML page, not a feed{hint}")
        ok = error is None
        outcome = CheckOutcome(ok=ok, status=status_code,
                               retry_after=error.retry_after if isinstance(error, HTTPStatusError) else None,
                               ttl_seconds=parsed.ttl_seconds if parsed else None,
                               gone=status_code == 410,
                               not_modified=fetched is not None and fetched.not_modified,
                               new_entries=fp.new_entries - fp.deferred, backlog=fp.deferred,
                               max_age=cache_max_age(fetched.headers) if fetched is not None else None)
        nxt = next_check(outcome, error_count=feed.error_count, interval=feed.interval_seconds,
                         settings=self.settings.schedule, now=now, poll=check.poll, rng=self._rng)
        if ok:
            status = "not-modified" if fetched is not None and fetched.not_modified else "ok"
            # Validators are stored only once every entry the feed lists is: with some left for a
            # retry or a later share, the next request must get the whole feed again, not a 304.
            keep_validators = fp.retry_later or fp.deferred > 0 or status == "not-modified"

            def recorded() -> None:
                summary.feeds_not_modified += status == "not-modified"
                summary.feeds_ok += status == "ok"
                if fetched is not None and fetched.permanent_redirect and fetched.permanent_redirect != feed.url:
                    log.info("%s: moved permanently to %s; checked there from now on", feed.url,
                             fetched.permanent_redirect)
                    record_move(self.store, feed.url, fetched.permanent_redirect, now)
                if parsed is not None and parsed.problem:
                    log.info("%s: feed is malformed but readable (%s)", feed.url, parsed.problem)

            self._leases.record(FeedResult(
                feed.id, fetched_at=now, status=status, error=None, error_count=0, next_due_at=nxt.due_at,
                etag=None if keep_validators else (fetched.etag if fetched else None),
                last_modified=None if keep_validators else (fetched.last_modified if fetched else None),
                title=parsed.title if parsed and parsed.title and not feed.title else None,
                new_url=fetched.permanent_redirect if fetched else None), feed, poll=nxt.poll, then=recorded)
        else:
            status = "blocked" if type(error).__name__ == "BlockedAddressError" else "error"

            def recorded() -> None:
                summary.feeds_failed += 1
                log.warning("feed failed: %s", error)
                if not nxt.enabled:
                    log.warning("%s: disabled after %d failures (re-enable with `monitor feeds enable`)",
                                feed.url, nxt.error_count)

            self._leases.record(FeedResult(feed.id, fetched_at=now, status=status, error=str(error),
                                           error_count=nxt.error_count, next_due_at=nxt.due_at),
                                feed, enabled=None if nxt.enabled else False, then=recorded)

    # -- pages -----------------------------------------------------------------------------

    def _fetch_page(self, url: str) -> FetchResult:
        return self.fetcher.fetch(url, accept=_PAGE_ACCEPT, max_bytes=self.settings.fetch.max_page_bytes)

    def _page_fetched(self, fut: Future[Any], cand: _Candidate, tasks: _Tasks,
                      summary: PassSummary, progress: dict[int, _FeedProgress], max_attempts: int) -> None:
        try:
            fetched: FetchResult = fut.result()
        except FetchError as e:
            self._page_failed(cand, str(e), summary, progress, max_attempts, permanent=False)
            return
        self._page_arrived(cand, fetched, tasks, summary, progress, max_attempts)

    def _page_arrived(self, cand: _Candidate, fetched: FetchResult, tasks: _Tasks,
                      summary: PassSummary, progress: dict[int, _FeedProgress], max_attempts: int) -> None:
        """A page is here (fetched now, or read from an archive): on to extraction if it is HTML."""
        if fetched.content_type not in _HTML_TYPES:
            self._page_failed(cand, f"not an HTML page ({fetched.content_type})", summary, progress,
                              max_attempts, permanent=True)
            return
        self._submit_extraction(_Extraction(cand, fetched), tasks)

    def _submit_extraction(self, job: _Extraction, tasks: _Tasks) -> None:
        from monitor.extract import extract_page  # lxml: not needed by a pass that stores nothing

        fetched = job.fetched
        kwargs = {"url": fetched.final_url, "encoding": _charset(fetched), "max_bytes": self.settings.fetch.max_page_bytes}
        try:
            fut = self._extract_pool().submit(extract_page, fetched.body, **kwargs)
        except BrokenProcessPool:
            # A worker died and took the pool with it: the next pages get a new one.
            log.warning("an extraction worker died; starting new ones")
            if self._extractors is not None:
                _terminate(self._extractors)
                self._extractors = None
            fut = self._extract_pool().submit(extract_page, fetched.body, **kwargs)
        tasks.add(fut, "extract", job)

    def _abandon_slow_extractions(self, tasks: _Tasks, summary: PassSummary,
                                  progress: dict[int, _FeedProgress]) -> None:
        """Give up extractions running longer than extract.timeout; their articles keep the feed's text.

        A worker busy with a pathological page cannot be interrupted, so the pool is replaced and
        the pages still waiting on the old pool are handed to the new one.
        """
        limit = float(self.settings.extract.timeout)
        if limit <= 0:
            return
        now = time.monotonic()
        overdue: list[Future[Any]] = []
        # The pool marks a task running when it queues it for a worker, one task ahead of the
        # workers, and hands tasks out in order: only the earliest unfinished ones can be running.
        looked_at = 0
        for fut, job in tasks.extractions.items():
            if fut.done():
                continue
            if job.since is None and fut.running():
                job.since = now
            if job.since is not None and now - job.since > limit:
                overdue.append(fut)
            looked_at += 1
            if looked_at > self._extract_workers() + 1:
                break
        if not overdue:
            return
        # Tasks are taken in order, so only the earliest `workers` can be the stuck ones.
        overdue.sort(key=lambda f: tasks.extractions[f].since)
        del overdue[self._extract_workers():]
        for fut in overdue:
            job = tasks.pop(fut)[1]
            summary.extractions_abandoned += 1
            log.warning("%s: extraction abandoned after %g s; the article is stored from the feed's text",
                        job.fetched.final_url, limit)
            self._store_candidate(job.cand, summary, progress, fetched=job.fetched, page=ExtractedPage(body=""))
        # Taken before the old pool goes: ending it cancels what it still holds.
        waiting = [(fut, job) for fut, job in tasks.extractions.items() if not fut.done()]
        for fut, _job in waiting:
            tasks.pop(fut)
        if self._extractors is not None:
            _terminate(self._extractors)
            self._extractors = None
        for _fut, job in waiting:
            job.since = None
            self._submit_extraction(job, tasks)

    def _page_failed(self, cand: _Candidate, reason: str, summary: PassSummary,
                     progress: dict[int, _FeedProgress], max_attempts: int, *, permanent: bool) -> None:
        """A page could not be had: fall back to the feed's own text, retry later, or give up."""
        from monitor.extract import html_to_text

        summary.pages_failed += 1
        log.info("page failed: %s: %s", cand.link, reason)
        if cand.entry.content_html and html_to_text(cand.entry.content_html).strip():
            self._store_candidate(cand, summary, progress, fetched=None, page=None)
            return
        attempts = self.store.record_page_failure(cand.url, cand.feed.url, reason, utcnow())
        if permanent or attempts >= max_attempts or cand.external:
            # Given up: keep what the feed said, so the entry is not lost.
            self._store_candidate(cand, summary, progress, fetched=None, page=None, gave_up=True)
        else:
            self._release(cand, summary, progress, retry=True)

    def _store_candidate(self, cand: _Candidate, summary: PassSummary, progress: dict[int, _FeedProgress], *,
                         fetched: FetchResult | None, page: ExtractedPage | None, gave_up: bool = False) -> None:
        """Build the article and match it against every story; the next batch stores both."""
        entry = cand.entry
        if page is not None and page.description and not (entry.title or entry.summary or entry.content_html):
            # A bare link (an archive's record, a sitemap's or a list's URL) has no feed text: the
            # page's own description stands in for the summary a feed would have given.
            entry = replace(entry, summary=page.description)
        article = build_article(entry, feed_url=cand.feed.url, feed_title=cand.feed_title, url=cand.url,
                                fetched=fetched, page=page, now=(fetched.date if fetched else None) or utcnow())
        if article is None:
            log.info("%s: nothing to store (no text in page or feed)", cand.link)
            self._release(cand, summary, progress, retry=not gave_up)
            return
        self._ready.append(_Ready(cand, article, self._match(article),
                                  clear_failure=fetched is not None and cand.failed_before))
        if self._ready_since is None:
            self._ready_since = time.monotonic()

    def _flush(self, summary: PassSummary, progress: dict[int, _FeedProgress]) -> None:
        """Store the articles ready, all in one transaction, then the results of the feeds they finished."""
        ready, self._ready, self._ready_since = self._ready, [], None
        if ready:
            now = utcnow()
            writes = [ArticleWrite(r.article, r.results, [(r.cand.feed.id, r.cand.entry.key, r.cand.url)],
                                   r.clear_failure) for r in ready]
            try:
                stored: list[tuple[int, bool, int] | None] = list(self.store.store_articles(writes, now))
            except Exception as e:
                # One bad article must not cost the others: store them one at a time.
                log.warning("storing %d articles together failed (%s); storing them one by one", len(ready), e)
                stored = [None] * len(ready)
            for r, write, outcome in zip(ready, writes, stored):
                try:
                    if outcome is None:
                        outcome = self.store.store_articles([write], now)[0]
                    self._stored(r, outcome, summary)
                except Exception:
                    log.exception("unexpected error while storing %s", r.cand.link)
                    self._release(r.cand, summary, progress, retry=True)
                else:
                    self._release(r.cand, summary, progress, retry=False)
        self._leases.flush()

    def _stored(self, r: _Ready, outcome: tuple[int, bool, int], summary: PassSummary) -> None:
        article_id, created, added = outcome
        if not created:
            return
        if any(result.matched for result in r.results):
            record_learning(self.store, article_id, r.article, r.results, self.matcher.stories)
        summary.new_articles += 1
        summary.from_feed_text += r.article.source != "page"
        summary.new_matches += added
        for result in r.results:
            if result.matched:
                summary.matches_by_story[result.story_id] += 1

    def _match(self, article: Article) -> list[MatchResult]:
        try:
            return self.matcher.match(article)
        except Exception:
            log.exception("matching failed for %s; stored without matches", article.url)
            return []

    def _release(self, cand: _Candidate, summary: PassSummary, progress: dict[int, _FeedProgress], *,
                 retry: bool) -> None:
        fp = progress.get(cand.feed.id)
        if fp is None:
            return
        fp.retry_later |= retry
        fp.pending -= 1
        if fp.pending == 0:
            self._finish_feed(fp, summary)


def newest_first(entries: Sequence[FeedEntry]) -> list[FeedEntry]:
    """`entries` by publication time, newest first; undated ones after, in the feed's order
    (feeds list their newest first). Ties keep the feed's order, so the same feed gives the same order."""
    return sorted(entries, key=lambda e: (e.published is None, -e.published.timestamp() if e.published else 0.0))


def hosts_in_turn(feeds: Sequence[FeedState]) -> list[FeedState]:
    """`feeds` taking their hosts in turn (one feed of each host, then the next of each, ...), each
    host's feeds in their given order: an outlet's feeds listed together would otherwise hold
    every fetch thread waiting for that one host's `fetch.per_host` slots."""
    by_host: dict[str, deque[FeedState]] = {}
    for feed in feeds:
        by_host.setdefault(_host(feed.url), deque()).append(feed)
    turn: list[FeedState] = []
    queues = list(by_host.values())
    while queues:
        turn.extend(q.popleft() for q in queues)
        queues = [q for q in queues if q]
    return turn


class _PageQueue:
    """Pages waiting to be fetched, handed out host by host in turn, at most `per_host` at once
    to any one host (the fetcher's own limit).

    Handing a host no more than it may serve keeps every fetch thread working: pages of one
    busy host queued first would otherwise hold the threads waiting for that host's slots while
    every other host waits behind them.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._waiting: dict[str, deque[_Candidate]] = {}
        self._in_flight: dict[str, int] = defaultdict(int)
        self._ready: deque[str] = deque()     # hosts with pages waiting and a slot free, in turn
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, cand: _Candidate) -> None:
        host = _host(cand.link)
        queue = self._waiting.get(host)
        if queue is None:
            queue = self._waiting[host] = deque()
            if self._in_flight[host] < self.per_host:
                self._ready.append(host)
        queue.append(cand)
        self._count += 1

    def take(self) -> _Candidate | None:
        """The next page to fetch, from the next host that has a slot free; None when none has."""
        if not self._ready:
            return None
        host = self._ready.popleft()
        queue = self._waiting[host]
        cand = queue.popleft()
        self._count -= 1
        self._in_flight[host] += 1
        if not queue:
            del self._waiting[host]
        elif self._in_flight[host] < self.per_host:
            self._ready.append(host)
        return cand

    def done(self, cand: _Candidate) -> None:
        """`cand`'s fetch ended: its host has a slot free again."""
        host = _host(cand.link)
        self._in_flight[host] -= 1
        if self._in_flight[host] == self.per_host - 1 and host in self._waiting:
            self._ready.append(host)
        if self._in_flight[host] <= 0:
            del self._in_flight[host]


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def page_fetcher(settings: Settings) -> Fetcher:
    """The guarded fetcher a pass uses: the [fetch] settings' limits, deadlines and politeness."""
    f = settings.fetch
    return Fetcher(
        FetchPolicy(allow_private_addresses=f.allow_private_addresses, user_agent=f.user_agent,
                    connect_timeout=f.connect_timeout, read_timeout=f.read_timeout,
                    total_timeout=f.total_timeout, max_bytes=f.max_feed_bytes, max_redirects=f.max_redirects),
        max_connections=f.concurrency, per_host=f.per_host)


def build_article(entry: FeedEntry, *, feed_url: str, feed_title: str, url: str, fetched: FetchResult | None,
                  page: ExtractedPage | None, now: datetime) -> Article | None:
    """Merge what the feed and the page say: the page's text, the feed's metadata first."""
    from monitor.extract import html_to_text

    body, source = "", "page"
    if page is not None and page.body.strip():
        body = page.body
    elif entry.content_html:
        body, source = html_to_text(entry.content_html), "feed-content"
    if not body.strip():
        body, source = entry.summary, "summary"
    title = entry.title or (page.title if page else None) or ""
    if not (body.strip() or title.strip()):
        return None
    host = urlsplit(fetched.final_url if fetched else url).hostname or ""
    return Article(
        url=url,
        final_url=fetched.final_url if fetched else (entry.link or url),
        feed_url=feed_url,
        title=title.strip(),
        body=body.strip(),
        fetched_at=now,
        published=entry.published or (page.published if page else None),
        author=entry.author or (page.author if page else None) or None,
        outlet=(page.site_name if page else None) or feed_title or host or None,
        lang=page.lang if page else None,
        summary=entry.summary,
        source=source,
        entry_key=entry.key,
    )


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End `pool` and its worker processes now, whatever they are doing.

    ProcessPoolExecutor has no public way to end a busy worker before Python 3.14; its
    `_processes` map is read defensively, and a pool without it is merely shut down.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


@dataclass(frozen=True, slots=True)
class _PendingResult:
    result: FeedResult
    feed: FeedState
    poll: PollState | None
    enabled: bool | None            # False: disable the feed
    then: Callable[[], None]        # what follows once the result is written


class _Leases:
    """Where a pass writes each feed's result: straight to the store, or, under leases, fenced by
    the claim so that a daemon whose lease was taken over drops its result instead.

    Results wait in `pending` until `flush`, which writes them all in one transaction."""

    def __init__(self, store: Store, claims: Sequence[Claim], lease_seconds: float) -> None:
        self.store, self.lease_seconds = store, float(lease_seconds)
        self.leased = bool(claims)
        self.held: dict[int, Claim] = {c.feed.id: c for c in claims}
        self.renewed = time.monotonic()
        self.pending: list[_PendingResult] = []
        self.pending_since: float | None = None

    def record(self, result: FeedResult, feed: FeedState, *, enabled: bool | None = None,
               poll: PollState | None = None, then: Callable[[], None] = lambda: None) -> None:
        """Queue the feed's result (and its new poll state); `then` runs once it is written, never
        when the lease was lost (nothing is written then)."""
        self.pending.append(_PendingResult(result, feed, poll, enabled, then))
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    def flush(self) -> None:
        pending, self.pending, self.pending_since = self.pending, [], None
        if not pending:
            return
        written: list[bool | None]
        try:
            written = list(self._write(pending))
        except Exception as e:
            # One bad result (a redirect to an unstorable address, say) must not cost the others.
            log.warning("storing %d feed results together failed (%s); storing them one by one", len(pending), e)
            written = [self._write_one(item) for item in pending]
        for item, ok in zip(pending, written):
            if ok is None:
                continue        # failed and logged: the feed is checked again next time
            if not ok:
                log.warning("%s: lease lost to another daemon; its result of this check is dropped", item.feed.url)
                continue
            try:
                item.then()
            except Exception:
                log.exception("unexpected error after recording %s", item.feed.url)

    def _write_one(self, item: _PendingResult) -> bool | None:
        try:
            return self._write([item])[0]
        except Exception:
            log.exception("storing the result of checking %s failed", item.feed.url)
            return None

    def _write(self, pending: list[_PendingResult]) -> list[bool]:
        if not self.leased:
            self.store.record_feed_results(
                [item.result for item in pending],
                then=lambda conn: write_poll_states(conn, self.store, [
                    (item.feed.id, item.poll, item.result.fetched_at) for item in pending if item.poll is not None]))
            for item in pending:
                if item.enabled is False:
                    self.store.set_feed_enabled(item.feed.url, False)
            return [True] * len(pending)
        claims = [self.held.pop(item.feed.id, None) for item in pending]
        released = [(item, claim) for item, claim in zip(pending, claims) if claim is not None]

        def polls(conn: Any, held: list[bool]) -> None:
            write_poll_states(conn, self.store, [(item.feed.id, item.poll, item.result.fetched_at)
                                                 for (item, _claim), ok in zip(released, held)
                                                 if ok and item.poll is not None])

        releases = [(claim, {**_release_fields(item.result), "enabled": item.enabled}) for item, claim in released]
        outcomes = iter(release_many(self.store.engine, releases, then=polls) if releases else [])
        return [claim is not None and next(outcomes) for claim in claims]

    def maybe_renew(self) -> None:
        """Renew the leases a third of the way through, so long work keeps its feeds."""
        if not self.held or time.monotonic() - self.renewed < self.lease_seconds / 3:
            return
        self.renewed = time.monotonic()
        kept = renew(self.store.engine, list(self.held.values()), utcnow(), self.lease_seconds)
        lost = set(self.held) - {c.feed.id for c in kept}
        for feed_id in lost:
            log.warning("%s: lease expired and was taken over", self.held[feed_id].feed.url)
        self.held = {c.feed.id: c for c in kept}

    def hand_back_unfinished(self) -> None:
        if self.held:
            release_many(self.store.engine, [(claim, {}) for claim in self.held.values()])
            self.held = {}


def _release_fields(result: FeedResult) -> dict[str, Any]:
    """`monitor.db.leases.release`'s keyword arguments for `result`."""
    return {"fetched_at": result.fetched_at, "status": result.status, "error": result.error,
            "error_count": result.error_count, "next_due_at": result.next_due_at, "etag": result.etag,
            "last_modified": result.last_modified, "title": result.title, "new_url": result.new_url}


def _charset(fetched: FetchResult) -> str | None:
    """The charset of the Content-Type header, if the server named one."""
    for param in fetched.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"\'')
    return None


def _describe(ctx: Any) -> str:
    if isinstance(ctx, FeedState):
        return ctx.url
    if isinstance(ctx, _Candidate):
        return ctx.link
    if isinstance(ctx, _Extraction):
        return ctx.cand.link
    return repr(ctx)


class _Ticker:
    """Progress lines for long passes: at most one every few seconds."""

    def __init__(self, sink: Callable[[str], None] | None, feeds: int, every: float = 3.0) -> None:
        self.sink, self.feeds, self.every = sink, feeds, every
        self.feeds_done = self.pages = 0
        self.last = time.monotonic()

    def feed_done(self) -> None:
        self.feeds_done += 1

    def page_queued(self) -> None:
        self.pages += 1

    def maybe_report(self, summary: PassSummary) -> None:
        if self.sink is None or time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        self.sink(f"feeds {self.feeds_done}/{self.feeds}, pages {summary.new_articles + summary.pages_failed}"
                  f"/{self.pages}, {plural(summary.new_articles, 'new article')}, {plural(summary.new_matches, 'new match')}")
