"""Reads for the read API (`monitor serve`) and the report: matches a page at a time, counts,
and near misses.

The digest reads every match of its window with the article's body (`Store.matches`); a
client browsing matches wants one page, without bodies, and how many there are in all.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, exists, func, select

from monitor._types import StoredNearMiss
from monitor.db import models as m
from monitor.db.articles import FILED_AT, MATCH_COLUMNS, match_fields, matches_in
from monitor.db.store import Store


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

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> MatchRow:
        """A row of `MATCH_COLUMNS`, mapped as a StoredMatch is (`match_fields`), first seen as the API names it."""
        fields = match_fields(row)
        fields["first_seen"] = fields.pop("fetched_at")
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class MatchFilter:
    story_ids: Sequence[str] | None = None    # None: every story
    since: datetime | None = None             # filed at or after
    until: datetime | None = None             # filed before
    min_score: float = 0.0


def match_counts(store: Store) -> dict[str, int]:
    """Stored matches per story id (stories without matches are absent)."""
    stmt = select(m.Match.story_id, func.count()).group_by(m.Match.story_id)
    with store.transaction() as conn:
        return {story_id: int(n) for story_id, n in conn.execute(stmt)}


def page_of_matches(store: Store, where: MatchFilter, *, limit: int, offset: int) -> tuple[list[MatchRow], int]:
    """One page of the matches `where` selects, newest first, and how many it selects in all."""
    page = (matches_in(select(*MATCH_COLUMNS), where.story_ids, where.since, where.until, where.min_score)
            .order_by(FILED_AT.desc(), m.Article.id.desc(), m.Match.story_id).limit(limit).offset(offset))
    total = matches_in(select(func.count()), where.story_ids, where.since, where.until, where.min_score)
    with store.transaction() as conn:
        rows = conn.execute(page).all()
        count = int(conn.execute(total).scalar_one())
    return [MatchRow.of(r) for r in rows], count


def near_misses(store: Store, story_ids: Sequence[str], *, since: datetime | None = None,
                until: datetime | None = None, limit: int | None = None,
                offset: int = 0) -> tuple[list[StoredNearMiss], int]:
    """The near misses of `story_ids` filed in [since, until), closest to the threshold first, and
    how many there are in all. An article the story has matched since (a backfill with a newer
    version) is no longer a near miss."""
    if not story_ids:
        return [], 0
    n, a = m.NearMiss, m.Article
    matched = exists().where(m.Match.story_id == n.story_id, m.Match.article_id == n.article_id)
    where = [n.story_id.in_(list(story_ids)), ~matched]
    if since is not None:
        where.append(FILED_AT >= since)
    if until is not None:
        where.append(FILED_AT < until)
    columns = (n.story_id, n.score, n.logit, n.evidence, n.model_version, n.decided_at, a.id, a.final_url, a.url,
               a.title, a.outlet, a.published, a.fetched_at, a.lang)
    page = (select(*columns).select_from(n).join(a, n.article_id == a.id).where(*where)
            .order_by(n.story_id, n.logit.desc(), FILED_AT.desc(), a.id).limit(limit).offset(offset))
    total = select(func.count()).select_from(n).join(a, n.article_id == a.id).where(*where)
    with store.transaction() as conn:
        rows = conn.execute(page).all()
        count = int(conn.execute(total).scalar_one())
    return [StoredNearMiss(story_id=r.story_id, score=r.score, logit=r.logit, evidence=tuple(r.evidence or ()),
                           model_version=r.model_version, decided_at=r.decided_at, article_id=r.id, url=r.final_url,
                           canonical_url=r.url, title=r.title, outlet=r.outlet, published=r.published,
                           fetched_at=r.fetched_at, lang=r.lang) for r in rows], count
