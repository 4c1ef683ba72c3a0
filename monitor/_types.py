"""Values passed between the phases of the pipeline.

fetch -> parse feed -> (fetch page -> extract) -> article -> match -> store.

Every value is a frozen dataclass: a phase never mutates what an earlier one produced.
All datetimes are timezone-aware and in UTC.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

# An analyst's label on an article for a story: on it, off it, or a brief (passing) mention.
JudgmentLabel = Literal["on", "off", "brief"]
JUDGMENT_LABELS: tuple[JudgmentLabel, ...] = get_args(JudgmentLabel)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One HTTP exchange after redirects, as the fetcher saw it."""

    url: str                      # the URL asked for
    final_url: str                # after redirects
    status: int                   # final HTTP status (200, 304, ...)
    headers: Mapping[str, str]    # final response headers, lower-case names
    body: bytes = b""             # decoded (decompressed) body, capped; b"" on 304
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None   # target of a 301/308 chain from `url`, if any
    elapsed: float = 0.0          # seconds
    date: datetime | None = None  # when the exchange happened, if not just now (a web archive's capture time)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item of a feed, normalised. Text fields are plain text (never markup)."""

    key: str                      # stable identity inside the feed: guid/id, else link, else hash
    link: str | None              # absolute http(s) URL of the article page, or None
    title: str = ""
    summary: str = ""             # plain text
    content_html: str | None = None   # full text carried by the feed (content:encoded), HTML
    author: str = ""
    published: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    link: str | None              # the site's home page
    entries: tuple[FeedEntry, ...]
    ttl_seconds: int | None = None
    is_html: bool = False         # the document was an HTML page, not a feed
    alternates: tuple[str, ...] = ()   # feed URLs found in <link rel="alternate"> of an HTML page
    problem: str | None = None    # parser's complaint about a malformed feed that still yielded entries


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """What trafilatura found in an article page."""

    body: str                     # paragraphs separated by a blank line; "" when nothing found
    title: str | None = None
    author: str | None = None
    published: datetime | None = None
    site_name: str | None = None
    lang: str | None = None       # ISO 639-1
    canonical_url: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """An article as stored: one per canonical URL."""

    url: str                      # canonical URL (the identity)
    final_url: str                # the page's own address after redirects
    feed_url: str                 # the feed it was first seen in
    title: str
    body: str
    fetched_at: datetime
    published: datetime | None = None
    author: str | None = None
    outlet: str | None = None
    lang: str | None = None
    summary: str = ""
    source: str = "page"          # "page", "feed-content" (page failed, feed had full text), "summary"
    entry_key: str | None = None


@dataclass(frozen=True, slots=True)
class MatchResult:
    """A story's verdict on one article."""

    story_id: str
    matched: bool
    score: float                  # calibrated, in [0, 1]
    evidence: tuple[str, ...] = ()    # sentences a person understands
    rule_versions: Mapping[str, str] = field(default_factory=dict)
    best_passage: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)   # per-rule numbers, for `stories test`
    model_version: str | None = None      # the story model version that decided (None: no database)
    near_miss: bool = False               # not matched, but within a small margin of the threshold

    @property
    def logit(self) -> float | None:
        value = self.details.get("logit")
        return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed as the database knows it: identity, schedule and health."""

    id: int
    url: str
    title: str | None
    source: str                   # "config", "cli" or "opml"
    enabled: bool
    interval_seconds: int | None  # per-feed override; None = the configured default
    etag: str | None
    last_modified: str | None
    last_fetched_at: datetime | None
    last_status: str | None       # "ok", "not-modified", "error", "blocked", ...
    last_error: str | None
    error_count: int              # consecutive failures
    next_due_at: datetime | None  # None = due now


@dataclass(frozen=True, slots=True)
class StoredMatch:
    """A match joined with its article, as the digest reads it."""

    story_id: str
    score: float
    evidence: tuple[str, ...]
    matched_at: datetime
    article_id: int
    url: str                      # the article's own address (after redirects)
    canonical_url: str
    feed_url: str
    title: str
    outlet: str | None
    published: datetime | None
    fetched_at: datetime          # first seen
    lang: str | None
    body: str
    best_passage: str | None = None
    logit: float | None = None    # what the score is a sigmoid of: it still ranks where scores round to 1.00

    @property
    def when(self) -> datetime:
        """The time the digest files the match under: published, else first seen."""
        return self.published or self.fetched_at


@dataclass(frozen=True, slots=True)
class StoredNearMiss:
    """A decision that fell just short of a story's threshold, joined with its article: the "why not"."""

    story_id: str
    score: float
    logit: float
    evidence: tuple[str, ...]
    model_version: str            # the story model version that decided
    decided_at: datetime
    article_id: int
    url: str                      # the article's own address (after redirects)
    canonical_url: str
    title: str
    outlet: str | None
    published: datetime | None
    fetched_at: datetime          # first seen
    lang: str | None = None

    @property
    def when(self) -> datetime:
        """The time it is filed under, as matches are: published, else first seen."""
        return self.published or self.fetched_at
