"""The pipeline: feeds in, articles and matches stored.

The phases pass frozen values (monitor._types):

    fetch feed -> parse feed -> new entries -> fetch page -> extract -> article -> match -> store

The rooms:

- `Pipeline` (here) holds the long-lived parts - the fetcher and its threads, the extraction pool,
  the matcher - and makes passes; two callers may run passes on one pipeline at the same time.
- `passes.Pass` is one pass: it runs once, its state (leases, articles waiting to be written,
  counters) its own; `summary.PassSummary` is what it did.
- `fetching`: a feed fetched and parsed, a page fetched, pages handed out host by host.
- `extraction.ExtractionPool`: the worker processes pages are extracted in, replaced when stuck.
- `decide`: the pure decisions (entry order, the article an entry makes, a feed check's outcome).
- `leases.Leases`: where a pass writes each feed's outcome, fenced by its claims when daemons share.

A feed's validators (ETag, Last-Modified) are stored only once all its new entries are safely
stored, so a crash or a stop never turns unprocessed entries into a 304. Pages are fetched a
bounded way ahead of extraction; one check takes at most `fetch.max_new_entries` of a feed's new
entries, newest first, and leaves the rest, unrecorded, for the next checks. When each feed is
checked next, and whether with its validators, is `monitor.schedule`'s call.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from monitor._types import Article, FeedEntry, FeedState, FetchResult, MatchResult, ParsedFeed
from monitor.config import Settings
from monitor.db.leases import Claim
from monitor.db.store import FeedResult, Store
from monitor.pipeline.decide import build_article, newest_first
from monitor.pipeline.extraction import ExtractionPool
from monitor.pipeline.fetching import FeedCheck, check_feed, hosts_in_turn, page_fetcher
from monitor.pipeline.leases import Leases
from monitor.pipeline.passes import Pass, log, utcnow
from monitor.pipeline.summary import PassSummary
from monitor.schedule import PollState

if TYPE_CHECKING:
    from monitor.matching import Story

__all__ = ["MatcherLike", "PassSummary", "Pipeline", "build_article", "hosts_in_turn", "newest_first", "page_fetcher"]


class MatcherLike(Protocol):
    """What a pass asks of a matcher (monitor.matching.Matcher, or the lazy one of monitor.runtime)."""

    @property
    def rule_errors(self) -> int: ...

    @property
    def stories(self) -> Sequence[Story]: ...

    def match(self, article: Article) -> list[MatchResult]: ...


class Pipeline:
    """The long-lived parts of the monitor's work - settings, store, matcher, fetcher, fetch threads
    and extraction pool - and the passes run with them. Safe to use from several threads at once:
    every pass keeps its state to itself, and the parts it shares are safe to share."""

    def __init__(self, settings: Settings, store: Store, matcher: MatcherLike,
                 *, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.matcher = matcher          # read by each pass as it starts: a new one counts from the next pass
        self.progress = progress
        self.fetcher = page_fetcher(settings)
        self.threads = ThreadPoolExecutor(max_workers=max(1, settings.fetch.concurrency), thread_name_prefix="fetch")
        self.extraction = ExtractionPool(settings.extract.workers, settings.fetch.max_page_bytes)
        self.rng = random.Random()      # the jitter of retries (seeding one per feed costs more)

    def close(self) -> None:
        """Stop at once: fetches in flight fail within a fraction of a second, extraction workers end."""
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.extraction.close()
        self.fetcher.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_pass(self, feeds: Sequence[FeedState], *, stop: threading.Event | None = None,
                 claims: Sequence[Claim] = ()) -> PassSummary:
        """Check `feeds`, store every new article and match. Never raises for a bad feed or page.

        With `claims` (leases on the feeds, when several daemons share the database) the leases are
        renewed while the pass works, and each feed's result is written only while its lease is
        still held; feeds left unfinished by a stop are handed back.
        """
        run = Pass(self, Leases(self.store, claims, self.settings.schedule.lease), stop)
        in_turn = hosts_in_turn(self._skip_moved(feeds))
        polls = _PollStatesAhead(self.store, in_turn)
        return run.run(in_turn, lambda feed: self.threads.submit(check_feed, self.fetcher, self.settings.fetch,
                                                                 feed, polls.take(feed)))

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
        run = Pass(self, Leases(self.store, (), self.settings.schedule.lease), stop)
        parsed = ParsedFeed(title=title or feed.title or "", link=None, entries=tuple(entries))
        done: Future[FeedCheck] = Future()
        done.set_result(FeedCheck(feed, parsed=parsed, external=True, pages=pages))
        return run.run([feed], lambda _feed: done)

    def _skip_moved(self, feeds: Sequence[FeedState]) -> list[FeedState]:
        """`feeds` without those whose URL moved permanently to a feed stored under the new URL.

        Such a feed is the configuration still naming the old address: it is disabled with a
        note that says where the feed is checked now, and never fetched again.
        """
        moves = self.store.moved_to([feed.url for feed in feeds])
        kept: list[FeedState] = []
        for feed in feeds:
            new = moves.get(feed.url)
            if new is None or self.store.get_feed(new) is None:
                kept.append(feed)
                continue
            note = f"{feed.url}: moved permanently to {new}, which is checked instead; update the configuration"
            log.warning("%s", note)
            now = utcnow()
            self.store.record_feed_result(FeedResult(feed.id, fetched_at=now, status="moved", error=note,
                                                     error_count=0, next_due_at=now))
            self.store.set_feed_enabled(feed.url, False)
        return kept


class _PollStatesAhead:
    """The stored poll states of a pass's feeds, read a chunk at a time in the order the pass
    starts their checks, each forgotten once its check has it: a pass over 100,000 feeds held
    them all from its start to its end (some 25 MiB)."""

    CHUNK = 1000

    def __init__(self, store: Store, feeds: Sequence[FeedState]) -> None:
        self._store, self._feeds = store, feeds
        self._read = 0                  # feeds[:_read] have had their states read
        self._states: dict[int, PollState] = {}

    def take(self, feed: FeedState) -> PollState:
        """`feed`'s stored poll state (a new one if it has none)."""
        if self._read < len(self._feeds) and self._feeds[self._read].id == feed.id:
            ids = [f.id for f in self._feeds[self._read:self._read + self.CHUNK]]
            self._read += len(ids)
            found = self._store.load_poll_states(ids)
            self._states.update((i, found.get(i, PollState())) for i in ids)
        state = self._states.pop(feed.id, None)
        if state is None:       # out of the order given, or asked for twice: read on its own
            state = self._store.load_poll_states([feed.id]).get(feed.id, PollState())
        return state
