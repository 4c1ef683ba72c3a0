"""Reads for the web workspace (`monitor.web`): per-story health, near misses, article search.

Matches themselves are read as the digest reads them (`Store.matches`), so the workspace and
the report see the same coverage.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from monitor.db import models as m
from monitor.db.articles import FILED_AT
from monitor.db.store import Store


@dataclass(frozen=True, slots=True)
class StoryActivity:
    total: int
    new_since: int                # matches made at or after the `since` asked for (today)
    last_matched_at: datetime | None


@dataclass(frozen=True, slots=True)
class ArticleHit:
    id: int
    canonical_url: str
    url: str
    title: str
    outlet: str | None
    lang: str | None
    filed_at: datetime
    story_ids: tuple[str, ...]    # the stories that matched it


def story_activity(store: Store, story_ids: Sequence[str], since: datetime) -> dict[str, StoryActivity]:
    """Per story: stored matches, those made at or after `since`, and when it last matched."""
    stmt = (select(m.Match.story_id, func.count(), func.max(m.Match.matched_at),
                   func.count().filter(m.Match.matched_at >= since))
            .where(m.Match.story_id.in_(list(story_ids))).group_by(m.Match.story_id))
    with store.transaction() as conn:
        found = {sid: StoryActivity(int(total), int(today or 0), last) for sid, total, last, today in conn.execute(stmt)}
    return {sid: found.get(sid, StoryActivity(0, 0, None)) for sid in story_ids}


def filed_times(store: Store, story_ids: Sequence[str]) -> dict[str, list[datetime]]:
    """Per story, the time each of its matches is filed under (the digest's timeline input)."""
    stmt = (select(m.Match.story_id, FILED_AT).join(m.Article, m.Match.article_id == m.Article.id)
            .where(m.Match.story_id.in_(list(story_ids))))
    found: dict[str, list[datetime]] = {sid: [] for sid in story_ids}
    with store.transaction() as conn:
        for story_id, when in conn.execute(stmt):
            found[story_id].append(when)
    return found


def is_stored(store: Store, canonical_url: str) -> bool:
    """Whether an article with this canonical URL is stored."""
    with store.transaction() as conn:
        return conn.execute(select(m.Article.id).where(m.Article.url == canonical_url)).first() is not None


def search_articles(store: Store, text: str, *, limit: int, offset: int) -> tuple[list[ArticleHit], int]:
    """Stored articles whose title or body contains `text` (any case), newest first, one page,
    and how many there are in all. An empty `text` selects every article."""
    where = []
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(func.lower(m.Article.title).like(pattern, escape="\\"),
                         func.lower(m.Article.body).like(pattern, escape="\\")))
    page = (select(m.Article.id, m.Article.url, m.Article.final_url, m.Article.title, m.Article.outlet,
                   m.Article.lang, FILED_AT.label("filed_at"))
            .where(*where).order_by(FILED_AT.desc(), m.Article.id.desc()).limit(limit).offset(offset))
    total = select(func.count()).select_from(m.Article).where(*where)
    with store.transaction() as conn:
        rows = conn.execute(page).all()
        count = int(conn.execute(total).scalar_one())
        matched: dict[int, list[str]] = {}
        if rows:
            for article_id, story_id in conn.execute(
                    select(m.Match.article_id, m.Match.story_id)
                    .where(m.Match.article_id.in_([r.id for r in rows])).order_by(m.Match.story_id)):
                matched.setdefault(article_id, []).append(story_id)
    return [ArticleHit(id=r.id, canonical_url=r.url, url=r.final_url, title=r.title, outlet=r.outlet, lang=r.lang,
                       filed_at=r.filed_at, story_ids=tuple(matched.get(r.id, ()))) for r in rows], count
