"""Articles and matches: the entries feeds listed, the articles stored from them, the pages that
failed, and the stories' matches and near misses. `ArticleStore` is part of `Store`.

The mappings live here once: `Article` -> columns (`article_values`), row -> `ArticleRow`
(`article_row`) and back to an `Article` (`ArticleRow.article`), a verdict -> match or near-miss
columns (`match_values`, `near_miss_values`), and a match joined with its article -> `StoredMatch`
(`MATCH_COLUMNS` and `match_fields`, with `STORED_MATCH_COLUMNS` and `stored_match` built on them).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, delete, func, select, update

from monitor._types import Article, MatchResult, StoredMatch
from monitor.db import models as m
from monitor.db.base import StoreBase, check_indexable, chunks, stored_key

__all__ = ["FILED_AT", "MATCH_COLUMNS", "STORED_MATCH_COLUMNS", "ArticleRow", "ArticleStore", "ArticleWrite", "article_row",
           "article_values", "match_values", "matches_in", "near_miss_values", "stored_match"]


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


def article_values(article: Article) -> dict[str, Any]:
    """An article's columns."""
    return {
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


_ARTICLE_COLUMNS = (
    m.Article.id, m.Article.url, m.Article.final_url, m.Article.feed_url, m.Article.title, m.Article.author,
    m.Article.outlet, m.Article.published, m.Article.lang, m.Article.summary, m.Article.body, m.Article.source,
    m.Article.fetched_at,
)


def article_row(row: Row[*tuple[Any, ...]]) -> ArticleRow:
    """A row of `_ARTICLE_COLUMNS` as an ArticleRow."""
    return ArticleRow(**row._asdict())


def match_values(result: MatchResult) -> dict[str, Any]:
    """A match's columns from the verdict (every writer of matches uses this)."""
    return {"score": float(result.score), "evidence": list(result.evidence),
            "rule_versions": dict(result.rule_versions), "best_passage": result.best_passage,
            "model_version": result.model_version, "logit": result.logit}


def near_miss_values(result: MatchResult) -> dict[str, Any]:
    """A near miss's columns from the verdict."""
    return {"score": float(result.score), "logit": result.logit if result.logit is not None else 0.0,
            "evidence": list(result.evidence), "model_version": result.model_version or ""}


# A match is filed under its article's publication time, else when the article was first seen.
FILED_AT = func.coalesce(m.Article.published, m.Article.fetched_at)


def matches_in(stmt: Select[*tuple[Any, ...]], story_ids: Sequence[str] | None, since: datetime | None,
               until: datetime | None, min_score: float = 0.0) -> Select[*tuple[Any, ...]]:
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


# A match joined with its article: the columns every reader of matches takes (the API's pages of
# matches, `browse.MatchRow`), and the mapping of a row of them to fields named as StoredMatch names them.
MATCH_COLUMNS = (
    m.Match.story_id, m.Match.score, m.Match.evidence, m.Match.best_passage, m.Match.matched_at,
    m.Article.id, m.Article.final_url, m.Article.url, m.Article.feed_url, m.Article.title,
    m.Article.outlet, m.Article.lang, m.Article.published, m.Article.fetched_at,
)
# What the digest and the alerts read besides: the article's body and the match's logit.
STORED_MATCH_COLUMNS = (*MATCH_COLUMNS, m.Match.logit, m.Article.body)


def match_fields(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    """A row of `MATCH_COLUMNS` as the fields of a match (first seen is `fetched_at`)."""
    return {"story_id": row.story_id, "score": row.score, "evidence": tuple(row.evidence or ()),
            "best_passage": row.best_passage, "matched_at": row.matched_at, "article_id": row.id,
            "url": row.final_url, "canonical_url": row.url, "feed_url": row.feed_url, "title": row.title,
            "outlet": row.outlet, "lang": row.lang, "published": row.published, "fetched_at": row.fetched_at}


def stored_match(row: Row[*tuple[Any, ...]]) -> StoredMatch:
    """A row of `STORED_MATCH_COLUMNS` as a StoredMatch."""
    return StoredMatch(**match_fields(row), body=row.body, logit=row.logit)


class ArticleStore(StoreBase):
    """The Store's entries, articles, page failures and matches."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        # Built once, values bound at execution: SQLAlchemy then compiles each only once, where a
        # statement built with .values(row) per article costs more Python than the database work.
        self._add_entries = self.insert(m.Entry).on_conflict_do_nothing(index_elements=["feed_id", "entry_key"])
        self._add_article = (self.insert(m.Article).on_conflict_do_nothing(index_elements=["url"])
                             .returning(m.Article.id))

    # -- entries

    def unseen_entry_keys(self, feed_id: int, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that `feed_id` has not recorded yet."""
        by_stored_key = {stored_key(key): key for key in keys}
        seen: set[str] = set()
        with self.transaction() as conn:
            for chunk in chunks(list(by_stored_key)):
                stmt = select(m.Entry.entry_key).where(m.Entry.feed_id == feed_id, m.Entry.entry_key.in_(chunk))
                seen.update(conn.scalars(stmt))
        return {key for stored, key in by_stored_key.items() if stored not in seen}

    def record_entries(self, feed_id: int, rows: Sequence[tuple[str, str | None]], seen_at: datetime) -> None:
        """Record (entry key, canonical article URL) pairs as seen in `feed_id`; known keys are kept."""
        triples = [(feed_id, key, article_url) for key, article_url in rows]
        for chunk in chunks(triples):
            with self.transaction() as conn:
                self._insert_entries(conn, chunk, seen_at)

    def _insert_entries(self, conn: Connection, rows: Sequence[tuple[int, str, str | None]], seen_at: datetime) -> None:
        by_key = {
            (feed_id, stored_key(key)): {
                "feed_id": feed_id,
                "entry_key": stored_key(key),
                "article_url": article_url,
                "first_seen_at": seen_at,
            }
            for feed_id, key, article_url in rows
        }
        if by_key:
            conn.execute(self._add_entries, list(by_key.values()))

    # -- articles

    def known_article_urls(self, urls: Iterable[str]) -> set[str]:
        """The canonical URLs among `urls` that have a stored article, or had one that retention deleted."""
        by_stored_url = {m.clean_text(url): url for url in urls}
        known: set[str] = set()
        with self.transaction() as conn:
            for chunk in chunks(list(by_stored_url)):
                known.update(conn.scalars(select(m.Article.url).where(m.Article.url.in_(chunk))))
                left = [url for url in chunk if url not in known]
                if left:
                    known.update(conn.scalars(select(m.PrunedArticle.url).where(m.PrunedArticle.url.in_(left))))
        return {url for stored, url in by_stored_url.items() if stored in known}

    def store_articles(self, writes: Sequence[ArticleWrite], at: datetime) -> list[tuple[int, bool, int]]:
        """Store articles, their matches and near misses, and the feed entries that named them, in one
        transaction: all of them or none (a crash leaves either all or nothing).

        An article whose canonical URL is stored is kept as it is, and so is a story's existing match
        on it. `clear_failure` also forgets the failed fetches of the article's page. One commit per
        batch instead of one per article is most of the cost of storing on a busy pass. Returns
        (article id, whether the article was added, matches added) for each, in order.
        """
        for write in writes:
            check_indexable(write.article.url, "article URL")
        stored: list[tuple[int, bool, int]] = []
        with self.transaction() as conn:
            for write in writes:
                article_id, created = self._insert_article(conn, write.article)
                stored.append((article_id, created, self._insert_matches(conn, article_id, write.results, at)))
            self._insert_entries(conn, [entry for write in writes for entry in write.entries], at)
            cleared = [write.article.url for write in writes if write.clear_failure]
            if cleared:
                conn.execute(delete(m.PageFailure).where(m.PageFailure.url.in_(cleared)))
        return stored

    def _insert_article(self, conn: Connection, article: Article) -> tuple[int, bool]:
        added_id = conn.scalar(self._add_article, article_values(article))
        if added_id is not None:
            return added_id, True
        return conn.scalars(select(m.Article.id).where(m.Article.url == m.clean_text(article.url))).one(), False

    def iter_articles(self, batch: int = 500) -> Iterator[ArticleRow]:
        """Every stored article in insertion order, read `batch` at a time (no transaction held between)."""
        after_id = 0
        while True:
            stmt = select(*_ARTICLE_COLUMNS).where(m.Article.id > after_id).order_by(m.Article.id).limit(batch)
            with self.transaction() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                yield article_row(row)
            after_id = rows[-1].id

    def articles_at(self, urls: Iterable[str]) -> list[ArticleRow]:
        """The stored articles among the canonical `urls`, in insertion order."""
        found: list[ArticleRow] = []
        with self.transaction() as conn:
            for chunk in chunks(list(dict.fromkeys(urls))):
                found += [article_row(row)
                          for row in conn.execute(select(*_ARTICLE_COLUMNS).where(m.Article.url.in_(chunk)))]
        return sorted(found, key=lambda row: row.id)

    def count_articles(self) -> int:
        with self.transaction() as conn:
            return conn.scalars(select(func.count()).select_from(m.Article)).one()

    # -- pages that failed

    def record_page_failure(self, url: str, feed_url: str, error: str, at: datetime) -> int:
        """Count one more failed fetch of the page at canonical `url`; return the attempts so far."""
        check_indexable(url, "article URL")
        insert = self.insert(m.PageFailure).values(
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
        with self.transaction() as conn:
            return conn.scalars(stmt).one()

    def page_failure_attempts(self, urls: Iterable[str]) -> dict[str, int]:
        """Failed attempts so far for those of `urls` that failed; the others are absent."""
        by_stored_url = {m.clean_text(url): url for url in urls}
        attempts: dict[str, int] = {}
        with self.transaction() as conn:
            for chunk in chunks(list(by_stored_url)):
                stmt = select(m.PageFailure.url, m.PageFailure.attempts).where(m.PageFailure.url.in_(chunk))
                attempts.update({by_stored_url[url]: count for url, count in conn.execute(stmt)})
        return attempts

    # -- matches

    def _insert_matches(self, conn: Connection, article_id: int, results: Sequence[MatchResult], at: datetime) -> int:
        """Insert the matches among `results` (an existing match is kept) and the near misses; return
        how many matches were added."""
        near = [{"story_id": r.story_id, "article_id": article_id, "decided_at": at, **near_miss_values(r)}
                for r in results if r.near_miss]
        if near:
            conn.execute(self.insert(m.NearMiss).values(near)
                         .on_conflict_do_nothing(index_elements=["story_id", "article_id"]))
        return self._insert_match_rows(conn, [(r.story_id, article_id, r) for r in results if r.matched], at)

    def _insert_match_rows(self, conn: Connection, matches: Sequence[tuple[str, int, MatchResult]],
                           at: datetime) -> int:
        """Insert (story id, article id, verdict) matches, keeping any a story already has on the
        article; return how many were added."""
        rows = [{"story_id": story_id, "article_id": article_id, "matched_at": at, **match_values(result)}
                for story_id, article_id, result in matches]
        if not rows:
            return 0
        stmt = (
            self.insert(m.Match).values(rows)
            .on_conflict_do_nothing(index_elements=["story_id", "article_id"])
            .returning(m.Match.id)
        )
        return len(conn.execute(stmt).all())

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
        with self.transaction() as conn:
            return [stored_match(row) for row in conn.execute(stmt)]

    # -- a backfill's writes

    def match_scores(self, story_id: str) -> dict[int, float]:
        """Article id -> stored score of every match of `story_id`."""
        stmt = select(m.Match.article_id, m.Match.score).where(m.Match.story_id == story_id)
        with self.transaction() as conn:
            return {article_id: score for article_id, score in conn.execute(stmt)}

    def write_matches(self, story_id: str, *, add: Sequence[tuple[int, MatchResult]] = (),
                      update_: Sequence[tuple[int, MatchResult]] = (), remove: Sequence[int] = (),
                      at: datetime | None = None) -> tuple[int, int, int]:
        """One batch of a backfill in one transaction: insert new matches (a match that appeared
        meanwhile is kept), refresh the ones that still hold, delete the ones that no longer do.
        Returns (added, updated, removed)."""
        at = at or datetime.now(UTC)
        updated = removed = 0
        with self.transaction() as conn:
            added = self._insert_match_rows(conn, [(story_id, article_id, r) for article_id, r in add], at)
            for article_id, result in update_:
                refresh = (update(m.Match).where(m.Match.story_id == story_id, m.Match.article_id == article_id)
                           .values(match_values(result)))
                updated += conn.execute(refresh).rowcount
            for chunk in chunks(list(remove)):
                drop = delete(m.Match).where(m.Match.story_id == story_id, m.Match.article_id.in_(chunk))
                removed += conn.execute(drop).rowcount
        return added, updated, removed

    def write_near_misses(self, story_id: str, decided: Sequence[tuple[int, MatchResult | None]],
                          at: datetime | None = None) -> None:
        """A backfill's new decisions on `decided` (article id, verdict; None when the prefilter skipped
        the article) replace the story's near misses of those articles: a verdict that came close is
        kept, any other leaves none."""
        at = at or datetime.now(UTC)
        ids = [article_id for article_id, _ in decided]
        rows = [{"story_id": story_id, "article_id": article_id, "decided_at": at, **near_miss_values(r)}
                for article_id, r in decided if r is not None and r.near_miss]
        with self.transaction() as conn:
            for chunk in chunks(ids):
                conn.execute(delete(m.NearMiss).where(m.NearMiss.story_id == story_id,
                                                      m.NearMiss.article_id.in_(chunk)))
            for rows_chunk in chunks(rows):
                conn.execute(self.insert(m.NearMiss).values(list(rows_chunk)))
