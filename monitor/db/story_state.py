"""What the database knows about stories beyond their matches: the names confident matches
taught each story (which a new story version may learn, monitor.db.story_models). A backfill's
match writes are the Store's (`Store.write_matches`, `Store.write_near_misses`).

    record_learning(store, article_id, article, results, stories)   # after storing a match
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from monitor._types import Article, MatchResult
from monitor.db import models as m
from monitor.db.store import Store
from monitor.matching.base import Story
from monitor.matching.evolve import choose_learned, learnable_names, outlet_of

__all__ = ["record_learning", "learned_names", "forget_sightings"]

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
