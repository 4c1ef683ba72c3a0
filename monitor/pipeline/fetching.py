"""The fetch stage: a feed fetched and parsed (`check_feed`), a page fetched (`fetch_page`), and the
queue that hands pages to the fetch threads host by host (`PageQueue`).

Both fetches run in the pipeline's fetch threads, through one guarded fetcher (`page_fetcher`)
whose limits, deadlines and per-host politeness come from the [fetch] settings.
"""
from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from monitor._types import FeedState, FetchResult, ParsedFeed
from monitor.config import FetchSettings, Settings
from monitor.exceptions import FetchError, MonitorError, ParseError
from monitor.fetch import Fetcher, FetchPolicy
from monitor.schedule import PollState

log = logging.getLogger("monitor.pipeline")

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain", ""})
_FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


def page_fetcher(settings: Settings) -> Fetcher:
    """The guarded fetcher a pass uses: the [fetch] settings' limits, deadlines and politeness."""
    f = settings.fetch
    return Fetcher(
        FetchPolicy(allow_private_addresses=f.allow_private_addresses, user_agent=f.user_agent,
                    connect_timeout=f.connect_timeout, read_timeout=f.read_timeout,
                    total_timeout=f.total_timeout, max_bytes=f.max_feed_bytes, max_redirects=f.max_redirects),
        max_connections=f.concurrency, per_host=f.per_host)


@dataclass(frozen=True, slots=True)
class FeedCheck:
    """The outcome of fetching and parsing one feed (computed in a fetch thread)."""

    feed: FeedState
    fetched: FetchResult | None = None
    parsed: ParsedFeed | None = None
    error: MonitorError | None = None
    poll: PollState = PollState()
    external: bool = False        # entries handed over by another aggregator, not fetched by us
    pages: Mapping[str, FetchResult] | None = None    # entries' pages fetched already (by entry key)


def check_feed(fetcher: Fetcher, settings: FetchSettings, feed: FeedState, poll: PollState) -> FeedCheck:
    """Fetch and parse one feed (fetch thread). Failures are returned, not raised."""
    conditional = not poll.revalidate
    if not conditional and (feed.etag or feed.last_modified):
        log.info("%s: answered 304 for a long time; asking once without validators", feed.url)
    try:
        fetched = fetcher.fetch(feed.url, etag=feed.etag if conditional else None,
                                last_modified=feed.last_modified if conditional else None,
                                accept=_FEED_ACCEPT, max_bytes=settings.max_feed_bytes)
    except FetchError as e:
        return FeedCheck(feed, error=e, poll=poll)
    if fetched.not_modified:
        return FeedCheck(feed, fetched=fetched, poll=poll)
    from monitor.feeds import parse_feed  # feedparser: not needed by a pass of 304s

    try:
        parsed = parse_feed(fetched.body, url=fetched.final_url, headers=fetched.headers,
                            max_bytes=settings.max_feed_bytes)
    except ParseError as e:
        return FeedCheck(feed, fetched=fetched, error=e, poll=poll)
    return FeedCheck(feed, fetched=fetched, parsed=parsed, poll=poll)


def fetch_page(fetcher: Fetcher, settings: FetchSettings, url: str) -> FetchResult:
    """Fetch an entry's page (fetch thread); FetchError when it cannot be had."""
    return fetcher.fetch(url, accept=_PAGE_ACCEPT, max_bytes=settings.max_page_bytes)


class _Linked(Protocol):
    @property
    def link(self) -> str: ...


_Page = TypeVar("_Page", bound=_Linked)


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


class PageQueue(Generic[_Page]):
    """Pages waiting to be fetched, handed out host by host in turn, at most `per_host` at once
    to any one host (the fetcher's own limit).

    Handing a host no more than it may serve keeps every fetch thread working: pages of one
    busy host queued first would otherwise hold the threads waiting for that host's slots while
    every other host waits behind them.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._waiting: dict[str, deque[_Page]] = {}
        self._in_flight: dict[str, int] = defaultdict(int)
        self._ready: deque[str] = deque()     # hosts with pages waiting and a slot free, in turn
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, page: _Page) -> None:
        host = _host(page.link)
        queue = self._waiting.get(host)
        if queue is None:
            queue = self._waiting[host] = deque()
            if self._in_flight[host] < self.per_host:
                self._ready.append(host)
        queue.append(page)
        self._count += 1

    def take(self) -> _Page | None:
        """The next page to fetch, from the next host that has a slot free; None when none has."""
        if not self._ready:
            return None
        host = self._ready.popleft()
        queue = self._waiting[host]
        page = queue.popleft()
        self._count -= 1
        self._in_flight[host] += 1
        if not queue:
            del self._waiting[host]
        elif self._in_flight[host] < self.per_host:
            self._ready.append(host)
        return page

    def done(self, page: _Page) -> None:
        """`page`'s fetch ended: its host has a slot free again."""
        host = _host(page.link)
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
