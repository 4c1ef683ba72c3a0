"""One pass: feed checks run to the end, their new entries' pages fetched, extracted, matched and
stored, each feed's outcome recorded once all its entries are safe.

A `Pass` is made by `Pipeline.run_pass` or `Pipeline.ingest`, runs once, and keeps every piece of
its state (its leases, the articles waiting for the next batch write, its counters) to itself, so
passes of one pipeline may run at the same time in different threads. Fetches run in the
pipeline's fetch threads, extractions in its extraction pool; every database write happens on
the thread that runs the pass, in batches: finished articles (each with its matches and entries)
and then the outcomes of the feeds they finished, one transaction per batch of up to
`BATCH_SIZE` articles (`FEED_BATCH_SIZE` feed outcomes) or `BATCH_SECONDS`.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from monitor._types import Article, ExtractedPage, FeedState, FetchResult, MatchResult
from monitor.db.store import ArticleWrite
from monitor.db.story_state import record_learning
from monitor.exceptions import FetchError
from monitor.pipeline.decide import Candidate, FeedDecision, build_article, choose_entries, decide_feed, newest_first
from monitor.pipeline.fetching import HTML_TYPES, FeedCheck, PageQueue, fetch_page
from monitor.pipeline.leases import Leases
from monitor.pipeline.summary import PassSummary, Ticker
from monitor.urls import canonicalize

if TYPE_CHECKING:
    from monitor.pipeline import MatcherLike, Pipeline

log = logging.getLogger("monitor.pipeline")

# Writes are batched: a transaction per article (or per unchanged feed) costs more than the
# article's own rows. A batch is written when it holds this many articles, or this many seconds
# after its first one, or when nothing else is left to wait for.
BATCH_SIZE = 50
FEED_BATCH_SIZE = 500     # feed results are small rows: a pass over 1,000 unchanged feeds writes a few
BATCH_SECONDS = 0.2
# How long the pass waits for a task at a time before looking at stop, leases and slow extractions.
POLL_SECONDS = 0.5
# Pages are fetched at most this far ahead of extraction, in number and in bytes: a feed with
# thousands of new entries must not hold all their pages in memory. Far enough that extraction
# never waits for a fetch (a shorter lead, 64 or 256 pages, made a 2-core pass 5-10% slower).
PAGES_AHEAD = 1024
BYTES_AHEAD = 256 * 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Extraction:
    """A page handed to the extraction pool; its time limit runs from when a worker takes it."""

    cand: Candidate
    fetched: FetchResult
    lost: int = 0                 # times a dying worker took it down (it is tried again once)
    generation: int = 0           # the extraction pool it went to


@dataclass(frozen=True, slots=True)
class _Ready:
    """An article built and matched, waiting for the next batch write."""

    cand: Candidate
    article: Article
    results: list[MatchResult]
    clear_failure: bool


@dataclass
class _FeedProgress:
    """Entries of one feed still being processed; the feed's result is recorded when it reaches 0."""

    check: FeedCheck
    pending: int = 0
    retry_later: bool = False     # some page failed and will be retried: keep the old validators
    new_entries: int = 0          # entries the feed had not shown before (the policy's measure of pace)
    deferred: int = 0             # new entries over the per-check bound: not recorded, so seen again next check


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


class Pass:
    """One run over some feed checks, with its own state; made by the Pipeline, run once."""

    def __init__(self, pipeline: Pipeline, leases: Leases, stop: threading.Event | None) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.store = pipeline.store
        # The matcher of the pass's start, to its end, with a rule-error count of the pass's own:
        # passes run at once share the pipeline's matcher, and each counted the other's errors too.
        # A shallow copy shares the compiled stories, not the count (a LazyMatcher's, once built).
        self.matcher: MatcherLike = copy.copy(pipeline.matcher)
        self.leases = leases
        self.stop = stop or threading.Event()
        self.summary = PassSummary()
        self._ran = False
        self._tasks = _Tasks()
        self._progress: dict[int, _FeedProgress] = {}
        self._in_pass: set[str] = set()                  # canonical URLs being fetched this pass
        self._max_attempts = max(1, self.settings.fetch.page_retries)
        self._to_fetch: PageQueue[Candidate] = PageQueue(max(1, self.settings.fetch.per_host))
        self._extraction_prepared = False
        self._ready: list[_Ready] = []
        self._ready_since: float | None = None
        self._ticker: Ticker | None = None

    def run(self, feeds: Sequence[FeedState], start_check: Callable[[FeedState], Future[FeedCheck]]) -> PassSummary:
        """Check `feeds` (`start_check` starts one) to the end: their new entries' pages fetched,
        extracted, matched and stored, each feed's result recorded once all its entries are safe."""
        if self._ran:
            raise RuntimeError("a pass runs once; ask the pipeline for a new one")
        self._ran = True
        started = time.monotonic()
        summary, tasks, stop, to_fetch = self.summary, self._tasks, self.stop, self._to_fetch
        summary.feeds = len(feeds)
        errors_before = self.matcher.rule_errors
        # Feed checks are started a few at a time, not all at once: 100,000 queued futures took
        # hundreds of MiB, and every page fetch of the pass waited behind all of them.
        unstarted = deque(feeds)
        feeds_ahead = 4 * max(1, self.settings.fetch.concurrency)
        ticker = self._ticker = Ticker(self.pipeline.progress, len(feeds))

        while (len(tasks) or to_fetch or unstarted) and not stop.is_set():
            while unstarted and len(tasks) - tasks.pages < feeds_ahead:
                feed = unstarted.popleft()
                tasks.add(start_check(feed), "feed", feed)
            for fut in tasks.finished(self._wait_seconds()):
                kind, ctx = tasks.pop(fut)
                try:
                    if kind == "feed":
                        ticker.feed_done()
                        self._feed_checked(fut.result())
                    elif kind == "page":
                        to_fetch.done(ctx)
                        self._page_fetched(fut, ctx)
                    else:  # "extract"
                        self._extracted(fut, ctx)
                except Exception:
                    # A bug in handling one feed or page is logged with its context, never fatal.
                    log.exception("unexpected error while handling %s %s", kind, _describe(ctx))
                    if kind != "feed":
                        self._release(ctx.cand if kind == "extract" else ctx, retry=True)
            self._abandon_slow_extractions()
            while tasks.pages < PAGES_AHEAD and tasks.page_bytes < BYTES_AHEAD:
                cand = to_fetch.take()
                if cand is None:
                    break
                tasks.add(self.pipeline.threads.submit(fetch_page, self.pipeline.fetcher, self.settings.fetch,
                                                       cand.link), "page", cand)
            if self._batch_due() or not len(tasks):
                self._flush()
            self.leases.maybe_renew()
            ticker.maybe_report(summary)

        if stop.is_set() and (len(tasks) or to_fetch or unstarted):
            summary.stopped = True
            for fut in tasks:
                fut.cancel()
            log.info("stop requested: %d unfinished tasks abandoned; they run again next time",
                     len(tasks) + len(to_fetch) + len(unstarted))
        # What is finished is stored, also when stopping: each article is whole, and a feed's
        # result is written only when every one of its entries is.
        self._flush()
        self.leases.hand_back_unfinished()
        summary.rule_errors = self.matcher.rule_errors - errors_before
        summary.seconds = time.monotonic() - started
        return summary

    def _wait_seconds(self) -> float:
        """How long to wait for the next finished task: until the pending batch is due, at most."""
        oldest = self._oldest_unwritten()
        if oldest is None:
            return POLL_SECONDS
        return max(0.0, min(POLL_SECONDS, oldest + BATCH_SECONDS - time.monotonic()))

    def _batch_due(self) -> bool:
        if len(self._ready) >= BATCH_SIZE or len(self.leases.pending) >= FEED_BATCH_SIZE:
            return True
        oldest = self._oldest_unwritten()
        return oldest is not None and time.monotonic() - oldest >= BATCH_SECONDS

    def _oldest_unwritten(self) -> float | None:
        """When the oldest article or feed result still waiting to be written was ready."""
        times = [t for t in (self._ready_since, self.leases.pending_since) if t is not None]
        return min(times) if times else None

    # -- feeds -----------------------------------------------------------------------------

    def _feed_checked(self, check: FeedCheck) -> None:
        fp = _FeedProgress(check)
        self._progress[check.feed.id] = fp
        assert self._ticker is not None
        candidates = self._new_candidates(fp)
        if candidates and not self._extraction_prepared:
            # Pages are coming: the extraction workers' server loads while they are fetched. Not
            # earlier: a pass that finds nothing new never pays its memory (some 125 MiB).
            self._extraction_prepared = True
            self.pipeline.extraction.prepare()
        for cand in candidates:
            fp.pending += 1
            self._ticker.page_queued()
            if cand.page is not None:
                self._page_arrived(cand, cand.page)
            else:
                self._to_fetch.add(cand)
        if fp.pending == 0:
            self._finish_feed(fp)

    def _new_candidates(self, fp: _FeedProgress) -> list[Candidate]:
        """The entries of a fetched feed that need their page; records the rest as seen."""
        check, summary, store = fp.check, self.summary, self.store
        feed, parsed = check.feed, check.parsed
        if parsed is None or check.error is not None or parsed.is_html:
            return []
        now = utcnow()
        unseen = store.unseen_entry_keys(feed.id, [e.key for e in parsed.entries])
        entries = [e for e in parsed.entries if e.key in unseen]
        # a feed that lists the same entry twice is one entry
        entries = newest_first(list({e.key: e for e in reversed(entries)}.values())[::-1])
        summary.new_entries += len(entries)
        urls = {e.key: canonicalize(e.link) for e in entries if e.link}
        known = store.known_article_urls(set(urls.values()))
        choice = choose_entries(check, entries, urls, known=known,
                                attempts=store.page_failure_attempts(list(set(urls.values()) - known)),
                                in_pass=self._in_pass, max_attempts=self._max_attempts,
                                # Entries handed over by an aggregator are not offered again: those are all taken.
                                bound=self.settings.fetch.max_new_entries if not check.external else 0)
        self._in_pass.update(cand.url for cand in choice.candidates)
        fp.new_entries, fp.deferred = len(entries), choice.deferred
        if choice.settled:
            store.record_entries(feed.id, list(choice.settled), now)
        if fp.deferred:
            summary.entries_deferred += fp.deferred
            log.info("%s: %d new entries, %d taken this pass (fetch.max_new_entries), %d left for the next",
                     feed.url, len(entries), len(choice.candidates), fp.deferred)
        return list(choice.candidates)

    def _finish_feed(self, fp: _FeedProgress) -> None:
        """Record the outcome of a feed check (and so schedule the next one)."""
        # Forgotten now, not at the pass's end: a pass over 100,000 feeds kept every check (its
        # response headers, poll state) until then, about 1 KiB a feed.
        self._progress.pop(fp.check.feed.id, None)
        if fp.check.external:
            self.summary.feeds_ok += 1      # the aggregator owns this feed's schedule
            return
        decision = decide_feed(fp.check, new_entries=fp.new_entries, deferred=fp.deferred,
                               retry_later=fp.retry_later, settings=self.settings.schedule, now=utcnow(),
                               rng=self.pipeline.rng)
        self.leases.record(decision, then=lambda: self._feed_recorded(decision))

    def _feed_recorded(self, d: FeedDecision) -> None:
        """The feed's outcome is written: count it, and say what needs saying."""
        summary, feed = self.summary, d.feed
        if d.ok:
            summary.feeds_not_modified += d.status == "not-modified"
            summary.feeds_ok += d.status == "ok"
            if d.moved_to is not None:
                log.info("%s: moved permanently to %s; checked there from now on", feed.url, d.moved_to)
                self.store.record_move(feed.url, d.moved_to, d.result.fetched_at)
            if d.problem:
                log.info("%s: feed is malformed but readable (%s)", feed.url, d.problem)
        else:
            summary.feeds_failed += 1
            log.warning("feed failed: %s", d.error)
            if d.enabled is False:
                log.warning("%s: disabled after %d failures (re-enable with `monitor feeds enable`)",
                            feed.url, d.result.error_count)

    # -- pages -----------------------------------------------------------------------------

    def _page_fetched(self, fut: Future[FetchResult], cand: Candidate) -> None:
        try:
            fetched = fut.result()
        except FetchError as e:
            self._page_failed(cand, str(e), permanent=False)
            return
        self._page_arrived(cand, fetched)

    def _page_arrived(self, cand: Candidate, fetched: FetchResult) -> None:
        """A page is here (fetched now, or read from an archive): on to extraction if it is HTML."""
        if fetched.content_type not in HTML_TYPES:
            self._page_failed(cand, f"not an HTML page ({fetched.content_type})", permanent=True)
            return
        self._submit_extraction(_Extraction(cand, fetched))

    def _submit_extraction(self, job: _Extraction) -> None:
        fut, job.generation = self.pipeline.extraction.submit(job.fetched)
        self._tasks.add(fut, "extract", job)

    def _extracted(self, fut: Future[ExtractedPage], job: _Extraction) -> None:
        try:
            page = fut.result()
        except Exception as e:
            if isinstance(e, CancelledError | BrokenProcessPool) and \
                    self.pipeline.extraction.ended_on_purpose(job.generation):
                # Another pass ended the pool this page was in (a page of its own was stuck).
                self._submit_extraction(job)
                return
            if isinstance(e, BrokenProcessPool) and job.lost == 0:   # a worker died (killed, out of memory)
                job.lost = 1
                self._submit_extraction(job)
                return
            # A dead worker must not stop the pass.
            log.warning("extraction failed for %s: %s", job.fetched.final_url, e)
            page = ExtractedPage(body="")
        self._store_candidate(job.cand, fetched=job.fetched, page=page)

    def _abandon_slow_extractions(self) -> None:
        """Give up extractions running longer than extract.timeout; their articles keep the feed's text.

        A worker busy with a pathological page cannot be interrupted, so the pool is replaced and
        the pages still waiting on the old pool are handed to the new one.
        """
        limit = float(self.settings.extract.timeout)
        if limit <= 0:
            return
        tasks = self._tasks
        # Which tasks are stuck is the pool's call, as it hands out the tasks of every pass in turn.
        overdue = [fut for fut in self.pipeline.extraction.overdue(limit) if fut in tasks.extractions]
        if not overdue:
            return
        stuck = max(tasks.extractions[fut].generation for fut in overdue)
        for fut in overdue:
            job = tasks.pop(fut)[1]
            self.summary.extractions_abandoned += 1
            log.warning("%s: extraction abandoned after %g s; the article is stored from the feed's text",
                        job.fetched.final_url, limit)
            self._store_candidate(job.cand, fetched=job.fetched, page=ExtractedPage(body=""))
        # Taken before the old pool goes: ending it cancels what it still holds.
        waiting = [(fut, job) for fut, job in tasks.extractions.items() if not fut.done()]
        for fut, _job in waiting:
            tasks.pop(fut)
        self.pipeline.extraction.replace(stuck)
        for _fut, job in waiting:
            self._submit_extraction(job)

    def _page_failed(self, cand: Candidate, reason: str, *, permanent: bool) -> None:
        """A page could not be had: fall back to the feed's own text, retry later, or give up."""
        from monitor.extract import html_to_text

        self.summary.pages_failed += 1
        log.info("page failed: %s: %s", cand.link, reason)
        if cand.entry.content_html and html_to_text(cand.entry.content_html).strip():
            self._store_candidate(cand, fetched=None, page=None)
            return
        attempts = self.store.record_page_failure(cand.url, cand.feed.url, reason, utcnow())
        if permanent or attempts >= self._max_attempts or cand.external:
            # Given up: keep what the feed said, so the entry is not lost.
            self._store_candidate(cand, fetched=None, page=None, gave_up=True)
        else:
            self._release(cand, retry=True)

    def _store_candidate(self, cand: Candidate, *, fetched: FetchResult | None, page: ExtractedPage | None,
                         gave_up: bool = False) -> None:
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
            self._release(cand, retry=not gave_up)
            return
        self._ready.append(_Ready(cand, article, self._match(article),
                                  clear_failure=fetched is not None and cand.failed_before))
        if self._ready_since is None:
            self._ready_since = time.monotonic()

    # -- writes ----------------------------------------------------------------------------

    def _flush(self) -> None:
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
            for r, write, outcome in zip(ready, writes, stored, strict=True):
                try:
                    if outcome is None:
                        outcome = self.store.store_articles([write], now)[0]
                    self._stored(r, outcome)
                except Exception:
                    log.exception("unexpected error while storing %s", r.cand.link)
                    self._release(r.cand, retry=True)
                else:
                    self._release(r.cand, retry=False)
        self.leases.flush()

    def _stored(self, r: _Ready, outcome: tuple[int, bool, int]) -> None:
        article_id, created, added = outcome
        if not created:
            return
        summary = self.summary
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

    def _release(self, cand: Candidate, *, retry: bool) -> None:
        fp = self._progress.get(cand.feed.id)
        if fp is None:
            return
        fp.retry_later |= retry
        fp.pending -= 1
        if fp.pending == 0:
            self._finish_feed(fp)


def _describe(ctx: Any) -> str:
    if isinstance(ctx, FeedState):
        return ctx.url
    if isinstance(ctx, Candidate):
        return ctx.link
    if isinstance(ctx, _Extraction):
        return ctx.cand.link
    return repr(ctx)

