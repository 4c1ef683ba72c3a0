"""Retention: the database does not grow forever (the `[retention]` policy).

Matched articles are kept whole, with their matches and evidence. Unmatched articles first seen
longer ago than `drop_unmatched_after` are deleted, their canonical URLs kept in
`pruned_articles` (so `Store.known_article_urls` still knows them and no feed brings them back to
be fetched); those first seen longer ago than `drop_bodies_after` lose their body and summary.
The entries that named them stay: they are the dedup keys of the feeds.

Work goes in batches of `batch_size` articles, one short transaction each, oldest first. A
`Pruner` remembers how far each step got, so a daemon that prunes a little on every tick walks
past the matched articles it keeps (and the bodies it already dropped) once, not on every batch.
Articles are aged by when they were first seen (`fetched_at`), never by the date a feed claims.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update

from monitor.config import RetentionSettings
from monitor.db import models as m
from monitor.db.store import Store

__all__ = ["PruneCounts", "Pruner", "prune"]

_UNMATCHED = ~exists(select(m.Match.id).where(m.Match.article_id == m.Article.id))
_HAS_TEXT = or_(m.Article.body != "", m.Article.summary != "")


@dataclass(frozen=True, slots=True)
class PruneCounts:
    articles_deleted: int = 0
    bodies_dropped: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(self.articles_deleted + other.articles_deleted, self.bodies_dropped + other.bodies_dropped)

    def __bool__(self) -> bool:
        return bool(self.articles_deleted or self.bodies_dropped)

    def line(self, *, dry_run: bool = False) -> str:
        verbs = ("would delete", "would drop") if dry_run else ("deleted", "dropped")
        return (f"retention: {verbs[0]} {self.articles_deleted} unmatched articles (their URLs kept, so they are "
                f"not fetched again), {verbs[1]} the text of {self.bodies_dropped} more; matched articles are kept")


class Pruner:
    """Applies `settings` to `store` a batch at a time (see the module's docstring)."""

    def __init__(self, store: Store, settings: RetentionSettings) -> None:
        self.store, self.settings = store, settings
        # (fetched_at, id) of the last article each step looked at: everything before it is done.
        self._deleted_to: tuple[datetime, int] | None = None
        self._dropped_to: tuple[datetime, int] | None = None

    def batch(self, now: datetime) -> PruneCounts:
        """One batch of each step that is configured; nothing left once it returns nothing."""
        counts = PruneCounts()
        if self.settings.drop_unmatched_after > 0:
            counts += PruneCounts(articles_deleted=self._delete_batch(now - _span(self.settings.drop_unmatched_after)))
        if self.settings.drop_bodies_after > 0:
            counts += PruneCounts(bodies_dropped=self._drop_batch(now - _span(self.settings.drop_bodies_after),
                                                                  self._delete_before(now)))
        return counts

    def _delete_before(self, now: datetime) -> datetime | None:
        """Articles first seen before this are deleted (so their text need not be dropped first)."""
        return now - _span(self.settings.drop_unmatched_after) if self.settings.drop_unmatched_after > 0 else None

    def run(self, now: datetime, *, max_batches: int | None = None, stop: Callable[[], bool] = lambda: False,
            progress: Callable[[PruneCounts], None] | None = None) -> PruneCounts:
        """Batches until nothing is left to prune (or `max_batches`, or `stop()`)."""
        total, batches = PruneCounts(), 0
        while not stop() and (max_batches is None or batches < max_batches):
            counts = self.batch(now)
            if not counts:
                break
            total += counts
            batches += 1
            if progress is not None:
                progress(total)
        return total

    def count(self, now: datetime) -> PruneCounts:
        """What `run` would do now, writing nothing (`monitor db prune --dry-run`)."""
        deleted, dropped = 0, 0
        delete_before = self._delete_before(now)
        with self.store.transaction() as conn:
            if delete_before is not None:
                deleted = conn.scalar(select(func.count()).select_from(m.Article)
                                      .where(m.Article.fetched_at < delete_before, _UNMATCHED)) or 0
            if self.settings.drop_bodies_after > 0:
                stmt = (select(func.count()).select_from(m.Article)
                        .where(m.Article.fetched_at < now - _span(self.settings.drop_bodies_after), _UNMATCHED,
                               _HAS_TEXT))
                if delete_before is not None:
                    stmt = stmt.where(m.Article.fetched_at >= delete_before)
                dropped = conn.scalar(stmt) or 0
        return PruneCounts(deleted, dropped)

    def _delete_batch(self, before: datetime) -> int:
        insert = self.store.insert(m.PrunedArticle).on_conflict_do_nothing(index_elements=["url"])
        with self.store.transaction() as conn:
            rows = conn.execute(self._oldest(before, self._deleted_to, m.Article.url)).all()
            if not rows:
                return 0
            self._deleted_to = (rows[-1].fetched_at, rows[-1].id)
            ids = [row.id for row in rows]
            at = datetime.now(UTC)
            conn.execute(insert, [{"url": row.url, "pruned_at": at} for row in rows])
            # Checked again as it deletes: an article matched meanwhile (a backfill) is kept.
            return conn.execute(delete(m.Article).where(m.Article.id.in_(ids), _UNMATCHED)).rowcount

    def _drop_batch(self, before: datetime, deleted_before: datetime | None) -> int:
        stmt = self._oldest(before, self._dropped_to).where(_HAS_TEXT)
        if deleted_before is not None:
            stmt = stmt.where(m.Article.fetched_at >= deleted_before)     # the delete step's: they go whole
        with self.store.transaction() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                return 0
            self._dropped_to = (rows[-1].fetched_at, rows[-1].id)
            stmt = update(m.Article).where(m.Article.id.in_([row.id for row in rows]), _UNMATCHED)
            return conn.execute(stmt.values(body="", summary="")).rowcount

    def _oldest(self, before: datetime, after: tuple[datetime, int] | None, *columns: Any) -> Any:
        """The next batch of unmatched articles first seen before `before`, oldest first, past `after`."""
        stmt = select(m.Article.id, m.Article.fetched_at, *columns).where(m.Article.fetched_at < before, _UNMATCHED)
        if after is not None:
            seen_at, last_id = after
            stmt = stmt.where(m.Article.fetched_at >= seen_at,
                              or_(m.Article.fetched_at > seen_at, and_(m.Article.fetched_at == seen_at,
                                                                        m.Article.id > last_id)))
        return stmt.order_by(m.Article.fetched_at, m.Article.id).limit(self.settings.batch_size)


def prune(store: Store, settings: RetentionSettings, now: datetime, *, dry_run: bool = False,
          progress: Callable[[PruneCounts], None] | None = None) -> PruneCounts:
    """Apply the policy to the whole database now (or, with `dry_run`, count what it would do)."""
    pruner = Pruner(store, settings)
    return pruner.count(now) if dry_run else pruner.run(now, progress=progress)


def _span(seconds: float) -> timedelta:
    return timedelta(seconds=float(seconds))
