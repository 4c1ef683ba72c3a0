"""The Store: every read and write of the monitor's database.

Each call is its own short transaction on its own pooled connection, so one Store may be shared
by the threads of one process. Every write is idempotent: rows that already exist are left alone.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Select, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from monitor._types import Article, FeedState, MatchResult, StoredMatch
from monitor.db import models as m
from monitor.db.engine import dialect_insert, make_engine, transaction
from monitor.db.migrate import require_current
from monitor.exceptions import StorageError

# Long IN-lists are split: SQLite limits bound parameters per statement, and huge
# statements hold locks longer than needed.
_CHUNK = 500
# PostgreSQL refuses B-tree index entries above ~2.7 kB; unique columns stay well below.
_MAX_INDEXED_BYTES = 2000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ArticleRow:
    """A stored article, as export and backfill read it."""

    id: int
    url: str                      # canonical
    final_url: str
    feed_url: str
    title: str
    author: str | None
    outlet: str | None
    published: datetime | None
    lang: str | None
    summary: str
    body: str
    source: str
    fetched_at: datetime

    def article(self) -> Article:
        """The article as the matcher reads it (backfill, `monitor eval --judgments`)."""
        return Article(url=self.url, final_url=self.final_url, feed_url=self.feed_url, title=self.title,
                       body=self.body, fetched_at=self.fetched_at, published=self.published, author=self.author,
                       outlet=self.outlet, lang=self.lang, summary=self.summary, source=self.source)


@dataclass(frozen=True, slots=True)
class ArticleWrite:
    """One article for `Store.store_articles`: with its matches and the feed entries that named it."""

    article: Article
    results: Sequence[MatchResult]
    entries: Sequence[tuple[int, str, str | None]]     # (feed id, entry key, canonical URL)
    clear_failure: bool = False                        # forget the failed fetches of its page


@dataclass(frozen=True, slots=True)
class FeedResult:
    """The outcome of one feed check, for `Store.record_feed_results` (see `record_feed_result`)."""

    feed_id: int
    fetched_at: datetime
    status: str
    error: str | None
    error_count: int
    next_due_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    new_url: str | None = None



def match_values(result: MatchResult) -> dict[str, Any]:
    """A match's columns from the verdict (every writer of matches uses this)."""
    return {"score": float(result.score), "evidence": list(result.evidence),
            "rule_versions": dict(result.rule_versions), "best_passage": result.best_passage,
            "model_version": result.model_version, "logit": result.logit}


def near_miss_values(result: MatchResult) -> dict[str, Any]:
    """A near miss's columns from the verdict."""
    return {"score": float(result.score), "logit": result.logit if result.logit is not None else 0.0,
            "evidence": list(result.evidence), "model_version": result.model_version or ""}

class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect_name = engine.dialect.name
        self._insert = dialect_insert(engine)
        # Built once, values bound at execution: SQLAlchemy then compiles each only once, where a
        # statement built with .values(row) per article costs more Python than the database work.
        self._add_entries = self._insert(m.Entry).on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        self._add_article = (self._insert(m.Article).on_conflict_do_nothing(index_elements=["url"])
                             .returning(m.Article.id))

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> Store:
        """Connect to `url` and check its schema; `create` migrates an empty database."""
        engine = make_engine(url)
        try:
            require_current(engine, create_if_empty=create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- feeds

    def sync_feeds(self, feeds: Sequence[tuple[str, str | None, int | None]], source: str = "config") -> int:
        """Add the (url, title, interval_seconds) feeds not stored yet; return how many were added.

        Never deletes, and leaves stored feeds as they are.
        """
        now = _now()
        # Most of the feeds of a configuration are stored already: look them up (a quick indexed
        # read) rather than send every row in an insert that ignores them.
        stored = self._stored_feed_urls([url for url, _title, _interval in feeds])
        rows = [_new_feed(url, title, source, interval, now) for url, title, interval in feeds
                if m.clean_text(url) not in stored]
        # One statement with the rows as parameters (executemany): a multi-row VALUES built per
        # chunk is compiled anew each time, which made adding 100,000 feeds take minutes.
        stmt = self._insert(m.Feed).on_conflict_do_nothing(index_elements=["url"]).returning(m.Feed.id)
        added = 0
        for chunk in _chunks(rows, 5000):
            with self._transaction() as conn:
                added += len(conn.execute(stmt, chunk).all())
        return added

    def _stored_feed_urls(self, urls: Sequence[str]) -> set[str]:
        """The stored feed URLs among `urls` (as stored: SafeText-cleaned)."""
        found: set[str] = set()
        with self._transaction() as conn:
            for chunk in _chunks(list(dict.fromkeys(m.clean_text(url) for url in urls))):
                found.update(conn.scalars(select(m.Feed.url).where(m.Feed.url.in_(chunk))))
        return found

    def add_feed(
        self, url: str, *, title: str | None = None, source: str = "cli", interval_seconds: int | None = None,
        enabled: bool = True,
    ) -> FeedState:
        """Add a feed; when `url` is already stored, return the stored feed unchanged."""
        row = _new_feed(url, title, source, interval_seconds, _now()) | {"enabled": enabled}
        with self._transaction() as conn:
            conn.execute(self._insert(m.Feed).values(row).on_conflict_do_nothing(index_elements=["url"]))
            return _feed_state(conn.execute(select(m.Feed).where(m.Feed.url == url)).one())

    def remove_feed(self, url: str) -> bool:
        """Delete the feed and its seen-entry records; its articles and matches stay."""
        with self._transaction() as conn:
            return conn.execute(delete(m.Feed).where(m.Feed.url == url)).rowcount > 0

    def get_feed(self, url: str) -> FeedState | None:
        with self._transaction() as conn:
            row = conn.execute(select(m.Feed).where(m.Feed.url == url)).one_or_none()
        return _feed_state(row) if row is not None else None

    def list_feeds(self) -> list[FeedState]:
        with self._transaction() as conn:
            return [_feed_state(row) for row in conn.execute(select(m.Feed).order_by(m.Feed.id))]

    def due_feeds(self, now: datetime, limit: int | None = None) -> list[FeedState]:
        """Enabled feeds whose next fetch is due at `now`, the longest-waiting first."""
        stmt = (
            select(m.Feed)
            .where(m.Feed.enabled, or_(m.Feed.next_due_at.is_(None), m.Feed.next_due_at <= now))
            .order_by(m.Feed.next_due_at.asc().nulls_first(), m.Feed.id)
            .limit(limit)
        )
        with self._transaction() as conn:
            return [_feed_state(row) for row in conn.execute(stmt)]

    def record_feed_result(
        self,
        feed_id: int,
        *,
        fetched_at: datetime,
        status: str,
        error: str | None,
        error_count: int,
        next_due_at: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
        title: str | None = None,
        new_url: str | None = None,
        then: Callable[[Connection], None] | None = None,
    ) -> None:
        """Store the outcome of one fetch. None for etag, last_modified or title keeps the stored value.

        `new_url` (a permanent redirect) replaces the feed's URL unless another feed already has it.
        `then` writes more of the same check in the same transaction (one commit per feed).
        """
        values = _feed_result_values(FeedResult(
            feed_id, fetched_at=fetched_at, status=status, error=error, error_count=error_count,
            next_due_at=next_due_at, etag=etag, last_modified=last_modified, title=title))
        if new_url is not None:
            _check_indexable(new_url, "feed URL")
        with self._transaction() as conn:
            conn.execute(update(m.Feed).where(m.Feed.id == feed_id).values(values))
            if new_url is not None:
                other = aliased(m.Feed)
                taken = exists(select(other.id).where(other.url == new_url))
                conn.execute(update(m.Feed).where(m.Feed.id == feed_id, ~taken).values(url=new_url))
            if then is not None:
                then(conn)

    def record_feed_results(self, results: Sequence[FeedResult],
                            then: Callable[[Connection], None] | None = None) -> None:
        """`record_feed_result` for many feeds in one transaction (a pass over many unchanged
        feeds then costs one commit, not one per feed); `then` writes more in the same transaction."""
        if not results and then is None:
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        moves: list[FeedResult] = []
        for result in results:
            values = _feed_result_values(result)
            groups.setdefault(tuple(values), []).append({"feed_id": result.feed_id, **values})
            if result.new_url is not None:
                _check_indexable(result.new_url, "feed URL")
                moves.append(result)
        with self._transaction() as conn:
            # One executemany per set of columns written (304s write the same ones).
            for columns, rows in groups.items():
                stmt = (update(m.Feed).where(m.Feed.id == bindparam("feed_id"))
                        .values({column: bindparam(f"new_{column}") for column in columns}))
                conn.execute(stmt, [{"feed_id": row["feed_id"], **{f"new_{c}": row[c] for c in columns}}
                                    for row in rows])
            for result in moves:
                other = aliased(m.Feed)
                taken = exists(select(other.id).where(other.url == result.new_url))
                conn.execute(update(m.Feed).where(m.Feed.id == result.feed_id, ~taken).values(url=result.new_url))
            if then is not None:
                then(conn)

    def set_feed_enabled(self, url: str, enabled: bool) -> bool:
        """Enable or disable a feed; False when no feed has `url`."""
        with self._transaction() as conn:
            return conn.execute(update(m.Feed).where(m.Feed.url == url).values(enabled=enabled)).rowcount > 0

    # -- entries and articles

    def unseen_entry_keys(self, feed_id: int, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that `feed_id` has not recorded yet."""
        by_stored_key = {_stored_entry_key(key): key for key in keys}
        seen: set[str] = set()
        with self._transaction() as conn:
            for chunk in _chunks(list(by_stored_key)):
                stmt = select(m.Entry.entry_key).where(m.Entry.feed_id == feed_id, m.Entry.entry_key.in_(chunk))
                seen.update(conn.scalars(stmt))
        return {key for stored, key in by_stored_key.items() if stored not in seen}

    def record_entries(self, feed_id: int, rows: Sequence[tuple[str, str | None]], seen_at: datetime) -> None:
        """Record (entry key, canonical article URL) pairs as seen in `feed_id`; known keys are kept."""
        triples = [(feed_id, key, article_url) for key, article_url in rows]
        for chunk in _chunks(triples):
            with self._transaction() as conn:
                self._insert_entries(conn, chunk, seen_at)

    def _insert_entries(self, conn: Connection, rows: Sequence[tuple[int, str, str | None]], seen_at: datetime) -> None:
        by_key = {
            (feed_id, _stored_entry_key(key)): {
                "feed_id": feed_id,
                "entry_key": _stored_entry_key(key),
                "article_url": article_url,
                "first_seen_at": seen_at,
            }
            for feed_id, key, article_url in rows
        }
        if by_key:
            conn.execute(self._add_entries, list(by_key.values()))

    def known_article_urls(self, urls: Iterable[str]) -> set[str]:
        """The canonical URLs among `urls` that have a stored article, or had one that retention deleted."""
        by_stored_url = {m.clean_text(url): url for url in urls}
        known: set[str] = set()
        with self._transaction() as conn:
            for chunk in _chunks(list(by_stored_url)):
                known.update(conn.scalars(select(m.Article.url).where(m.Article.url.in_(chunk))))
                left = [url for url in chunk if url not in known]
                if left:
                    known.update(conn.scalars(select(m.PrunedArticle.url).where(m.PrunedArticle.url.in_(left))))
        return {url for stored, url in by_stored_url.items() if stored in known}

    def save_article(self, article: Article) -> tuple[int, bool]:
        """Store `article` unless its canonical URL is stored; return (article id, whether it was added)."""
        with self._transaction() as conn:
            return self._insert_article(conn, article)

    def store_article(self, article: Article, results: Sequence[MatchResult],
                      entries: Sequence[tuple[int, str, str | None]], at: datetime, *,
                      clear_failure: bool = False) -> tuple[int, bool, int]:
        """Store an article, its matches and the feed entries that named it, all or nothing.

        `entries` are (feed id, entry key, canonical URL); `clear_failure` also forgets the failed
        fetches of the article's page. Returns (article id, whether the article was added, matches
        added). One transaction, so a crash leaves either all of it or none.
        """
        return self.store_articles([ArticleWrite(article, results, entries, clear_failure)], at)[0]

    def store_articles(self, writes: Sequence[ArticleWrite], at: datetime) -> list[tuple[int, bool, int]]:
        """`store_article` for many articles in one transaction: all of them or none.

        One commit per batch instead of one per article is most of the cost of storing on a busy
        pass. Returns (article id, whether it was added, matches added) for each, in order.
        """
        for write in writes:
            _check_indexable(write.article.url, "article URL")
        stored: list[tuple[int, bool, int]] = []
        with self._transaction() as conn:
            for write in writes:
                article_id, created = self._insert_article(conn, write.article)
                stored.append((article_id, created, self._insert_matches(conn, article_id, write.results, at)))
            self._insert_entries(conn, [entry for write in writes for entry in write.entries], at)
            cleared = [write.article.url for write in writes if write.clear_failure]
            if cleared:
                conn.execute(delete(m.PageFailure).where(m.PageFailure.url.in_(cleared)))
        return stored

    def _insert_article(self, conn: Connection, article: Article) -> tuple[int, bool]:
        _check_indexable(article.url, "article URL")
        row = {
            "url": article.url,
            "final_url": article.final_url,
            "feed_url": article.feed_url,
            "entry_key": article.entry_key,
            "title": article.title,
            "author": article.author,
            "outlet": article.outlet,
            "published": article.published,
            "lang": article.lang,
            "summary": article.summary,
            "body": article.body,
            "source": article.source,
            "fetched_at": article.fetched_at,
            "content_hash": hashlib.sha256(m.clean_text(article.body).encode("utf-8")).hexdigest(),
        }
        added_id = conn.scalar(self._add_article, row)
        if added_id is not None:
            return added_id, True
        return conn.scalars(select(m.Article.id).where(m.Article.url == m.clean_text(article.url))).one(), False

    def record_page_failure(self, url: str, feed_url: str, error: str, at: datetime) -> int:
        """Count one more failed fetch of the page at canonical `url`; return the attempts so far."""
        _check_indexable(url, "article URL")
        insert = self._insert(m.PageFailure).values(
            url=url, feed_url=feed_url, error=error, attempts=1, last_attempt_at=at
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["url"],
            set_={
                "attempts": m.PageFailure.attempts + 1,
                "error": insert.excluded.error,
                "last_attempt_at": insert.excluded.last_attempt_at,
            },
        ).returning(m.PageFailure.attempts)
        with self._transaction() as conn:
            return conn.scalars(stmt).one()

    def page_failure_attempts(self, urls: Iterable[str]) -> dict[str, int]:
        """Failed attempts so far for those of `urls` that failed; the others are absent."""
        by_stored_url = {m.clean_text(url): url for url in urls}
        attempts: dict[str, int] = {}
        with self._transaction() as conn:
            for chunk in _chunks(list(by_stored_url)):
                stmt = select(m.PageFailure.url, m.PageFailure.attempts).where(m.PageFailure.url.in_(chunk))
                attempts.update({by_stored_url[url]: count for url, count in conn.execute(stmt)})
        return attempts

    def clear_page_failure(self, url: str) -> None:
        with self._transaction() as conn:
            conn.execute(delete(m.PageFailure).where(m.PageFailure.url == url))

    # -- matches

    def save_matches(self, article_id: int, results: Sequence[MatchResult], at: datetime) -> int:
        """Store the results that matched; a story's existing match on the article is kept. Return how many were added."""
        with self._transaction() as conn:
            return self._insert_matches(conn, article_id, results, at)

    def _insert_matches(self, conn: Connection, article_id: int, results: Sequence[MatchResult], at: datetime) -> int:
        """Insert the matches among `results` (an existing match is kept) and the near misses; return
        how many matches were added."""
        near = [{"story_id": r.story_id, "article_id": article_id, "decided_at": at, **near_miss_values(r)}
                for r in results if r.near_miss]
        if near:
            conn.execute(self._insert(m.NearMiss).values(near)
                         .on_conflict_do_nothing(index_elements=["story_id", "article_id"]))
        rows = [{"story_id": r.story_id, "article_id": article_id, "matched_at": at, **match_values(r)}
                for r in results if r.matched]
        if not rows:
            return 0
        stmt = (
            self._insert(m.Match).values(rows)
            .on_conflict_do_nothing(index_elements=["story_id", "article_id"])
            .returning(m.Match.id)
        )
        return len(conn.execute(stmt).all())

    def delete_matches(self, story_id: str, article_ids: Iterable[int]) -> int:
        """Delete `story_id`'s matches on `article_ids` (before a backfill re-decides them)."""
        deleted = 0
        for chunk in _chunks(list(article_ids)):
            with self._transaction() as conn:
                stmt = delete(m.Match).where(m.Match.story_id == story_id, m.Match.article_id.in_(chunk))
                deleted += conn.execute(stmt).rowcount
        return deleted

    # -- reads

    def iter_articles(self, batch: int = 500) -> Iterator[ArticleRow]:
        """Every stored article in insertion order, read `batch` at a time (no transaction held between)."""
        after_id = 0
        while True:
            stmt = select(*_ARTICLE_COLUMNS).where(m.Article.id > after_id).order_by(m.Article.id).limit(batch)
            with self._transaction() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                yield ArticleRow(**row._asdict())
            after_id = rows[-1].id

    def articles_at(self, urls: Iterable[str]) -> list[ArticleRow]:
        """The stored articles among the canonical `urls`, in insertion order."""
        found: list[ArticleRow] = []
        with self._transaction() as conn:
            for chunk in _chunks(list(dict.fromkeys(urls))):
                found += [ArticleRow(**row._asdict())
                          for row in conn.execute(select(*_ARTICLE_COLUMNS).where(m.Article.url.in_(chunk)))]
        return sorted(found, key=lambda row: row.id)

    def count_articles(self) -> int:
        with self._transaction() as conn:
            return conn.scalars(select(func.count()).select_from(m.Article)).one()

    def matches(
        self, story_ids: Sequence[str] | None, since: datetime | None, until: datetime | None
    ) -> list[StoredMatch]:
        """Matches of `story_ids` (None: every story) whose article's time is in [since, until), oldest first.

        An article's time is its publication date, else when it was first seen.
        """
        if story_ids is not None and not story_ids:
            return []
        stmt = matches_in(select(*STORED_MATCH_COLUMNS), story_ids, since, until).order_by(
            FILED_AT, m.Match.story_id, m.Article.id)
        with self._transaction() as conn:
            return [stored_match(row) for row in conn.execute(stmt)]

    # --

    def _transaction(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine)


_ARTICLE_COLUMNS = (
    m.Article.id, m.Article.url, m.Article.final_url, m.Article.feed_url, m.Article.title, m.Article.author,
    m.Article.outlet, m.Article.published, m.Article.lang, m.Article.summary, m.Article.body, m.Article.source,
    m.Article.fetched_at,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _feed_result_values(result: FeedResult) -> dict[str, Any]:
    """The feed columns a check's result writes; None for etag, last_modified or title keeps the stored value."""
    values: dict[str, Any] = {
        "last_fetched_at": result.fetched_at,
        "last_status": result.status,
        "last_error": result.error,
        "error_count": result.error_count,
        "next_due_at": result.next_due_at,
    }
    kept_unless_given = {"etag": result.etag, "last_modified": result.last_modified, "title": result.title}
    values.update({name: value for name, value in kept_unless_given.items() if value is not None})
    return values


def _check_indexable(url: str, what: str) -> None:
    size = len(m.clean_text(url).encode("utf-8"))
    if size > _MAX_INDEXED_BYTES:
        raise StorageError(f"{what} too long to store ({size} bytes, limit {_MAX_INDEXED_BYTES}): {url[:120]}...")


def _stored_entry_key(key: str) -> str:
    """The key as stored: a digest stands in for keys too long to index (hostile feeds send any guid)."""
    stored = m.clean_text(key)
    if len(stored.encode("utf-8")) > _MAX_INDEXED_BYTES:
        return "sha256:" + hashlib.sha256(stored.encode("utf-8")).hexdigest()
    return stored


# A match is filed under its article's publication time, else when the article was first seen.
FILED_AT = func.coalesce(m.Article.published, m.Article.fetched_at)


def matches_in(stmt: Select[Any], story_ids: Sequence[str] | None, since: datetime | None,
               until: datetime | None, min_score: float = 0.0) -> Select[Any]:
    """`stmt` over matches joined to their articles, narrowed to `story_ids` (None: every story),
    filed in [since, until), scoring at least `min_score`: what the digest and the read API select."""
    stmt = stmt.select_from(m.Match).join(m.Article, m.Match.article_id == m.Article.id)
    if story_ids is not None:
        stmt = stmt.where(m.Match.story_id.in_(list(story_ids)))
    if since is not None:
        stmt = stmt.where(FILED_AT >= since)
    if until is not None:
        stmt = stmt.where(FILED_AT < until)
    if min_score > 0:
        stmt = stmt.where(m.Match.score >= min_score)
    return stmt


def _new_feed(url: str, title: str | None, source: str, interval_seconds: int | None, now: datetime) -> dict[str, Any]:
    _check_indexable(url, "feed URL")
    return {
        "url": url,
        "title": title,
        "source": source,
        "enabled": True,
        "interval_seconds": interval_seconds,
        "error_count": 0,
        "created_at": now,
    }


def _feed_state(row: Row[Any]) -> FeedState:
    return FeedState(
        id=row.id,
        url=row.url,
        title=row.title,
        source=row.source,
        enabled=row.enabled,
        interval_seconds=row.interval_seconds,
        etag=row.etag,
        last_modified=row.last_modified,
        last_fetched_at=row.last_fetched_at,
        last_status=row.last_status,
        last_error=row.last_error,
        error_count=row.error_count,
        next_due_at=row.next_due_at,
    )


# A match joined with its article, as the digest and the alerts read it: the columns and the mapping.
STORED_MATCH_COLUMNS = (
    m.Match.story_id, m.Match.score, m.Match.logit, m.Match.evidence, m.Match.matched_at, m.Match.best_passage,
    m.Article.id, m.Article.final_url, m.Article.url, m.Article.feed_url, m.Article.title,
    m.Article.outlet, m.Article.published, m.Article.fetched_at, m.Article.lang, m.Article.body,
)


def stored_match(row: Row[Any]) -> StoredMatch:
    return StoredMatch(
        story_id=row.story_id,
        score=row.score,
        evidence=tuple(row.evidence),
        matched_at=row.matched_at,
        article_id=row.id,
        url=row.final_url,
        canonical_url=row.url,
        feed_url=row.feed_url,
        title=row.title,
        outlet=row.outlet,
        published=row.published,
        fetched_at=row.fetched_at,
        lang=row.lang,
        body=row.body,
        best_passage=row.best_passage,
        logit=row.logit,
    )
