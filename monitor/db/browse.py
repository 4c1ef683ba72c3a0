"""Reads for the read API (`monitor serve`): matches a page at a time, and counts.

The digest reads every match of its window with the article's body (`Store.matches`); a
client browsing matches wants one page, without bodies, and how many there are in all.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select

from monitor.db import models as m
from monitor.db.engine import transaction
from monitor.db.store import Store

# Matches are filed under their article's publication time, else when it was first seen
# (as the digest files them: StoredMatch.when).
_WHEN = func.coalesce(m.Article.published, m.Article.fetched_at)


@dataclass(frozen=True, slots=True)
class MatchRow:
    story_id: str
    score: float
    evidence: tuple[str, ...]
    best_passage: str | None
    matched_at: datetime
    article_id: int
    url: str                      # the article's own address
    canonical_url: str
    feed_url: str
    title: str
    outlet: str | None
    lang: str | None
    published: datetime | None
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class MatchFilter:
    story_ids: Sequence[str] | None = None    # None: every story
    since: datetime | None = None             # filed at or after
    until: datetime | None = None             # filed before
    min_score: float = 0.0


def match_counts(store: Store) -> dict[str, int]:
    """Stored matches per story id (stories without matches are absent)."""
    stmt = select(m.Match.story_id, func.count()).group_by(m.Match.story_id)
    with transaction(store.engine) as conn:
        return {story_id: int(n) for story_id, n in conn.execute(stmt)}


def page_of_matches(store: Store, where: MatchFilter, *, limit: int, offset: int) -> tuple[list[MatchRow], int]:
    """One page of the matches `where` selects, newest first, and how many it selects in all."""
    columns = (
        m.Match.story_id, m.Match.score, m.Match.evidence, m.Match.best_passage, m.Match.matched_at,
        m.Article.id, m.Article.final_url, m.Article.url, m.Article.feed_url, m.Article.title,
        m.Article.outlet, m.Article.lang, m.Article.published, m.Article.fetched_at,
    )
    page = (_filtered(select(*columns), where)
            .order_by(_WHEN.desc(), m.Article.id.desc(), m.Match.story_id).limit(limit).offset(offset))
    total = _filtered(select(func.count()), where)
    with transaction(store.engine) as conn:
        rows = conn.execute(page).all()
        count = int(conn.execute(total).scalar_one())
    return [MatchRow(story_id=r.story_id, score=r.score, evidence=tuple(r.evidence or ()), best_passage=r.best_passage,
                     matched_at=r.matched_at, article_id=r.id, url=r.final_url, canonical_url=r.url,
                     feed_url=r.feed_url, title=r.title, outlet=r.outlet, lang=r.lang, published=r.published,
                     first_seen=r.fetched_at) for r in rows], count


def _filtered(stmt: Select, where: MatchFilter) -> Select:
    stmt = stmt.select_from(m.Match).join(m.Article, m.Match.article_id == m.Article.id)
    if where.story_ids is not None:
        stmt = stmt.where(m.Match.story_id.in_(list(where.story_ids)))
    if where.since is not None:
        stmt = stmt.where(_WHEN >= where.since)
    if where.until is not None:
        stmt = stmt.where(_WHEN < where.until)
    if where.min_score > 0:
        stmt = stmt.where(m.Match.score >= where.min_score)
    return stmt
