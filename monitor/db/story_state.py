"""What the database knows about stories beyond their matches: the background of stored
articles for tf-idf, the names confident matches taught each story, and the writes of a backfill.

    matcher = Matcher(load_learned(store, stories), background=stored_background(store))
    record_learning(store, article_id, article, results, stories)   # after storing a match
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from monitor._types import Article, MatchResult
from monitor.db import models as m
from monitor.db.engine import dialect_insert, transaction
from monitor.exceptions import MonitorError
from monitor.matching.base import Story
from monitor.matching.evolve import choose_learned, learnable_names, outlet_of, with_learned
from monitor.matching.profile import Background, background
from monitor.matching.text import tokenize

__all__ = ["MIN_BACKGROUND_DOCUMENTS", "stored_background", "record_learning", "learned_names", "load_learned",
           "learned_if_stored", "forget_sightings", "match_scores", "write_matches"]

# Below this many stored articles their document frequencies are noise: the prior alone is used.
MIN_BACKGROUND_DOCUMENTS = 200
_CHUNK = 500


def stored_background(store: Any, *, sample: int = 5000,
                      min_documents: int = MIN_BACKGROUND_DOCUMENTS) -> Background | None:
    """The shipped prior blended with document frequencies of the `sample` latest stored articles.

    None when fewer than `min_documents` articles are stored (the matcher then uses the prior).
    """
    df: dict[str, int] = {}
    documents = 0
    stmt = select(m.Article.title, m.Article.body).order_by(m.Article.id.desc()).limit(sample)
    with transaction(store.engine) as conn:
        for title, body in conn.execute(stmt):
            documents += 1
            for token in set(tokenize(f"{title}\n{body}")):
                df[token] = df.get(token, 0) + 1
    if documents < min_documents:
        return None
    # Tokens seen once say nothing about commonness and would only bloat the table.
    return background().blend(Background(documents=documents, df={t: n for t, n in df.items() if n >= 2}))


def record_learning(store: Any, article_id: int, article: Article, results: Sequence[MatchResult],
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
    with transaction(store.engine) as conn:
        stmt = (dialect_insert(store.engine)(m.StoryNameSighting).values(rows)
                .on_conflict_do_nothing(index_elements=["story_id", "name", "article_id"])
                .returning(m.StoryNameSighting.id))
        return len(conn.execute(stmt).all())


def forget_sightings(store: Any, story_id: str, article_ids: Iterable[int]) -> int:
    """Drop what `article_ids` taught `story_id` (their match no longer holds)."""
    ids = list(article_ids)
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        with transaction(store.engine) as conn:
            stmt = delete(m.StoryNameSighting).where(m.StoryNameSighting.story_id == story_id,
                                                     m.StoryNameSighting.article_id.in_(ids[start:start + _CHUNK]))
            deleted += conn.execute(stmt).rowcount
    return deleted


def learned_names(store: Any, story_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Story id -> the names it learned (monitor.matching.evolve.choose_learned decides)."""
    if not story_ids:
        return {}
    s = m.StoryNameSighting
    stmt = (select(s.story_id, s.name, func.count(func.distinct(s.article_id)), func.count(func.distinct(s.outlet)))
            .where(s.story_id.in_(list(story_ids)))
            .group_by(s.story_id, s.name))
    seen: dict[str, list[tuple[str, int, int]]] = {}
    with transaction(store.engine) as conn:
        for story_id, name, articles, outlets in conn.execute(stmt):
            seen.setdefault(story_id, []).append((name, articles, outlets))
    return {story_id: names for story_id, rows in seen.items() if (names := choose_learned(rows))}


def load_learned(store: Any, stories: Sequence[Story]) -> list[Story]:
    """The stories with the names they learned attached: what the daemon matches with."""
    return with_learned(stories, learned_names(store, [s.id for s in stories]))


def learned_if_stored(database_url: str, story: Story) -> Story:
    """`story` with its learned names when the database exists and is current; else unchanged.

    For commands that only read (`stories show`, `stories test`): they never create a database.
    """
    from monitor.db.store import Store

    if database_url.startswith("sqlite:///") and not Path(database_url.removeprefix("sqlite:///")).exists():
        return story
    try:
        store = Store.open(database_url, create=False)
    except MonitorError:
        return story
    try:
        return load_learned(store, [story])[0]
    finally:
        store.close()


# -- backfill ------------------------------------------------------------------------------

def match_scores(store: Any, story_id: str) -> dict[int, float]:
    """Article id -> stored score of every match of `story_id`."""
    stmt = select(m.Match.article_id, m.Match.score).where(m.Match.story_id == story_id)
    with transaction(store.engine) as conn:
        return {article_id: score for article_id, score in conn.execute(stmt)}


def write_matches(store: Any, story_id: str, *, add: Sequence[tuple[int, MatchResult]] = (),
                  update_: Sequence[tuple[int, MatchResult]] = (), remove: Sequence[int] = (),
                  at: datetime | None = None) -> tuple[int, int, int]:
    """One batch of a backfill in one transaction: insert new matches (a match that appeared
    meanwhile is kept), refresh the ones that still hold, delete the ones that no longer do.
    Returns (added, updated, removed)."""
    at = at or datetime.now(UTC)
    added = updated = removed = 0
    with transaction(store.engine) as conn:
        if add:
            rows = [{"story_id": story_id, "article_id": article_id, "matched_at": at, **_match_values(r)}
                    for article_id, r in add]
            stmt = (dialect_insert(store.engine)(m.Match).values(rows)
                    .on_conflict_do_nothing(index_elements=["story_id", "article_id"]).returning(m.Match.id))
            added = len(conn.execute(stmt).all())
        for article_id, result in update_:
            stmt = (update(m.Match).where(m.Match.story_id == story_id, m.Match.article_id == article_id)
                    .values(_match_values(result)))
            updated += conn.execute(stmt).rowcount
        for start in range(0, len(remove), _CHUNK):
            stmt = delete(m.Match).where(m.Match.story_id == story_id,
                                         m.Match.article_id.in_(list(remove[start:start + _CHUNK])))
            removed += conn.execute(stmt).rowcount
    return added, updated, removed


def _match_values(result: MatchResult) -> dict[str, Any]:
    return {"score": float(result.score), "evidence": list(result.evidence),
            "rule_versions": dict(result.rule_versions), "best_passage": result.best_passage}
