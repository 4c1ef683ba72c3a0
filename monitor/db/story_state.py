"""What the database knows about stories beyond their matches: the names confident matches
taught each story (which a new story version may learn, monitor.db.story_models), and the
writes of a backfill.

    record_learning(store, article_id, article, results, stories)   # after storing a match
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update

from monitor._types import Article, MatchResult
from monitor.db import models as m
from monitor.db.articles import match_values, near_miss_values
from monitor.db.store import Store
from monitor.matching.base import Story
from monitor.matching.evolve import choose_learned, learnable_names, outlet_of

__all__ = ["record_learning", "learned_names", "forget_sightings", "match_scores", "write_matches",
           "write_near_misses"]

_CHUNK = 500


def record_learning(store: Store, article_id: int, article: Article, results: Sequence[MatchResult],
                    stories: Sequence[Story], *, at: datetime | None = None) -> int:
    """Record the names confident verdicts on `article` may teach; return how many were new."""
    by_id = {s.id: s for s in stories}
    outlet = outlet_of(article)
    rows = [{"story_id": r.story_id, "name": name, "article_id": article_id, "outlet": outlet,
             "seen_at": at or datetime.now(UTC)}
            for r in results if r.story_id in by_id
            for name in learnable_names(by_id[r.story_id], article, r)]
    if not rows:
        return 0
    with store.transaction() as conn:
        stmt = (store.insert(m.StoryNameSighting).values(rows)
                .on_conflict_do_nothing(index_elements=["story_id", "name", "article_id"])
                .returning(m.StoryNameSighting.id))
        return len(conn.execute(stmt).all())


def forget_sightings(store: Store, story_id: str, article_ids: Iterable[int]) -> int:
    """Drop what `article_ids` taught `story_id` (their match no longer holds)."""
    ids = list(article_ids)
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        with store.transaction() as conn:
            stmt = delete(m.StoryNameSighting).where(m.StoryNameSighting.story_id == story_id,
                                                     m.StoryNameSighting.article_id.in_(ids[start:start + _CHUNK]))
            deleted += conn.execute(stmt).rowcount
    return deleted


def learned_names(store: Store, story_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Story id -> the names it learned (monitor.matching.evolve.choose_learned decides)."""
    if not story_ids:
        return {}
    s = m.StoryNameSighting
    stmt = (select(s.story_id, s.name, func.count(func.distinct(s.article_id)), func.count(func.distinct(s.outlet)))
            .where(s.story_id.in_(list(story_ids)))
            .group_by(s.story_id, s.name))
    seen: dict[str, list[tuple[str, int, int]]] = {}
    with store.transaction() as conn:
        for story_id, name, articles, outlets in conn.execute(stmt):
            seen.setdefault(story_id, []).append((name, articles, outlets))
    return {story_id: names for story_id, rows in seen.items() if (names := choose_learned(rows))}


# -- backfill ------------------------------------------------------------------------------

def match_scores(store: Store, story_id: str) -> dict[int, float]:
    """Article id -> stored score of every match of `story_id`."""
    stmt = select(m.Match.article_id, m.Match.score).where(m.Match.story_id == story_id)
    with store.transaction() as conn:
        return {article_id: score for article_id, score in conn.execute(stmt)}


def write_matches(store: Store, story_id: str, *, add: Sequence[tuple[int, MatchResult]] = (),
                  update_: Sequence[tuple[int, MatchResult]] = (), remove: Sequence[int] = (),
                  at: datetime | None = None) -> tuple[int, int, int]:
    """One batch of a backfill in one transaction: insert new matches (a match that appeared
    meanwhile is kept), refresh the ones that still hold, delete the ones that no longer do.
    Returns (added, updated, removed)."""
    at = at or datetime.now(UTC)
    added = updated = removed = 0
    with store.transaction() as conn:
        if add:
            rows = [{"story_id": story_id, "article_id": article_id, "matched_at": at, **match_values(r)}
                    for article_id, r in add]
            stmt = (store.insert(m.Match).values(rows)
                    .on_conflict_do_nothing(index_elements=["story_id", "article_id"]).returning(m.Match.id))
            added = len(conn.execute(stmt).all())
        for article_id, result in update_:
            stmt = (update(m.Match).where(m.Match.story_id == story_id, m.Match.article_id == article_id)
                    .values(match_values(result)))
            updated += conn.execute(stmt).rowcount
        for start in range(0, len(remove), _CHUNK):
            stmt = delete(m.Match).where(m.Match.story_id == story_id,
                                         m.Match.article_id.in_(list(remove[start:start + _CHUNK])))
            removed += conn.execute(stmt).rowcount
    return added, updated, removed




def write_near_misses(store: Store, story_id: str, decided: Sequence[tuple[int, MatchResult | None]],
                      at: datetime | None = None) -> None:
    """A backfill's new decisions on `decided` (article id, verdict; None when the prefilter skipped
    the article) replace the story's near misses of those articles: a verdict that came close is
    kept, any other leaves none."""
    at = at or datetime.now(UTC)
    ids = [article_id for article_id, _ in decided]
    rows = [{"story_id": story_id, "article_id": article_id, "decided_at": at, **near_miss_values(r)}
            for article_id, r in decided if r is not None and r.near_miss]
    with store.transaction() as conn:
        for start in range(0, len(ids), _CHUNK):
            conn.execute(delete(m.NearMiss).where(m.NearMiss.story_id == story_id,
                                                  m.NearMiss.article_id.in_(ids[start:start + _CHUNK])))
        for start in range(0, len(rows), _CHUNK):
            conn.execute(store.insert(m.NearMiss).values(rows[start:start + _CHUNK]))
