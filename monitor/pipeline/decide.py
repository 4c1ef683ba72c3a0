"""The pass's pure decisions, as frozen values the pass then writes: which of a feed's new entries
need their page, in which order (`choose_entries`, `newest_first`), what article an entry and its
page make (`build_article`), and what a feed check leaves in the database (`decide_feed`).
Nothing here reads or writes the database or the network.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from monitor._types import Article, ExtractedPage, FeedEntry, FeedState, FetchResult
from monitor.config import ScheduleSettings
from monitor.db.store import FeedResult
from monitor.exceptions import HTTPStatusError, MonitorError, ParseError
from monitor.fetch import cache_max_age
from monitor.pipeline.fetching import FeedCheck
from monitor.schedule import CheckOutcome, PollState, next_check

log = logging.getLogger("monitor.pipeline")


def newest_first(entries: Sequence[FeedEntry]) -> list[FeedEntry]:
    """`entries` by publication time, newest first; undated ones after, in the feed's order
    (feeds list their newest first). Ties keep the feed's order, so the same feed gives the same order."""
    return sorted(entries, key=lambda e: (e.published is None, -e.published.timestamp() if e.published else 0.0))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A new entry whose page the pass will have, and everything needed to store it."""

    feed: FeedState
    feed_title: str
    entry: FeedEntry
    url: str                 # canonical
    link: str                # as given by the feed
    failed_before: bool = False   # earlier passes recorded failed fetches of the page
    external: bool = False        # handed over by another aggregator: no later pass will retry it
    page: FetchResult | None = None   # the page, fetched already (a web archive's record)


@dataclass(frozen=True, slots=True)
class EntryChoice:
    """What a feed check's new entries come to (see `choose_entries`)."""

    candidates: tuple[Candidate, ...]                # their pages to have, in this order
    settled: tuple[tuple[str, str | None], ...]      # (entry key, canonical URL): recorded as seen, no page
    deferred: int                                    # over the bound: left unrecorded, new again next check


def choose_entries(check: FeedCheck, entries: Sequence[FeedEntry], urls: Mapping[str, str], *,
                   known: Set[str], attempts: Mapping[str, int], in_pass: Set[str], max_attempts: int,
                   bound: int) -> EntryChoice:
    """Which of a check's new `entries` (in the order to take them; `urls`: their canonical links
    by entry key) need their page. Not those without a usable link, those whose article is stored
    (`known`) or on its way in this pass (`in_pass`), nor those given up on earlier passes
    (`attempts`); of the rest, at most `bound` (0: every one)."""
    feed, parsed = check.feed, check.parsed
    pages = check.pages or {}
    # An archive is no outlet: its pages name their own (else their host stands for it).
    title = feed.title or (parsed.title if parsed else "") or ("" if pages else urlsplit(feed.url).hostname or feed.url)
    settled: list[tuple[str, str | None]] = []
    cands: list[Candidate] = []
    taken: set[str] = set()
    deferred = 0
    for e in entries:
        url = urls.get(e.key)
        page = pages.get(e.key)
        if url is None:
            log.info("%s: entry %r has no usable link; recorded, not stored", feed.url, e.title or e.key)
            settled.append((e.key, None))
        elif url in known or url in in_pass or url in taken:
            settled.append((e.key, url))     # the same article, seen through another feed
        elif attempts.get(url, 0) >= max_attempts and page is None:
            settled.append((e.key, url))     # given up on earlier passes
        elif 0 < bound <= len(cands):
            deferred += 1                    # unrecorded, so the next check sees it as new again
        else:
            taken.add(url)
            cands.append(Candidate(feed, title, e, url, e.link or url, failed_before=url in attempts,
                                   external=check.external, page=page))
    return EntryChoice(tuple(cands), tuple(settled), deferred)


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


@dataclass(frozen=True, slots=True)
class FeedDecision:
    """What one feed check leaves behind: its result row, its next poll state, and what to say
    and do once that is written."""

    feed: FeedState
    result: FeedResult
    status: str                   # "ok", "not-modified", "error" or "blocked"
    poll: PollState | None = None           # the poll state to store (a successful check's)
    enabled: bool | None = None             # False: disable the feed (too many failures)
    error: MonitorError | None = None
    moved_to: str | None = None             # a permanent redirect to record
    problem: str | None = None              # malformed but readable

    @property
    def ok(self) -> bool:
        return self.error is None


def decide_feed(check: FeedCheck, *, new_entries: int, deferred: int, retry_later: bool,
                settings: ScheduleSettings, now: datetime, rng: random.Random) -> FeedDecision:
    """The outcome of a feed check (not one handed over by an aggregator, whose schedule it owns),
    once each of its new entries is stored, retried later, or deferred."""
    feed, error, fetched, parsed = check.feed, check.error, check.fetched, check.parsed
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
                           new_entries=new_entries - deferred, backlog=deferred,
                           max_age=cache_max_age(fetched.headers) if fetched is not None else None)
    nxt = next_check(outcome, error_count=feed.error_count, interval=feed.interval_seconds,
                     settings=settings, now=now, poll=check.poll, rng=rng)
    if error is None:
        status = "not-modified" if fetched is not None and fetched.not_modified else "ok"
        # Validators are stored only once every entry the feed lists is: with some left for a
        # retry or a later share, the next request must get the whole feed again, not a 304.
        keep_validators = retry_later or deferred > 0 or status == "not-modified"
        moved = fetched.permanent_redirect if fetched is not None else None
        return FeedDecision(feed, FeedResult(
            feed.id, fetched_at=now, status=status, error=None, error_count=0, next_due_at=nxt.due_at,
            etag=None if keep_validators else (fetched.etag if fetched else None),
            last_modified=None if keep_validators else (fetched.last_modified if fetched else None),
            title=parsed.title if parsed and parsed.title and not feed.title else None,
            new_url=moved), status, poll=nxt.poll,
            moved_to=moved if moved and moved != feed.url else None,
            problem=parsed.problem if parsed is not None and parsed.problem else None)
    status = "blocked" if type(error).__name__ == "BlockedAddressError" else "error"
    return FeedDecision(feed, FeedResult(feed.id, fetched_at=now, status=status, error=str(error),
                                         error_count=nxt.error_count, next_due_at=nxt.due_at),
                        status, enabled=None if nxt.enabled else False, error=error)
