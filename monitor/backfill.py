"""Retro-matching: re-score stored articles after a story is added or changed.

    summary = backfill(store, story, since=..., dry_run=True)   # what would change; writes nothing
    summary = backfill(store, story, since=...)                 # the same decisions, written

Every stored article whose time (published, else first seen) lies in [since, until) is scored
again. A new match is inserted (one that appeared meanwhile is kept), a stored match that no
longer holds is deleted, and one that still holds gets its new score, evidence and rule versions.
Writes go in batches, one transaction each; articles outside the range are left alone.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from monitor._types import Article, MatchResult
from monitor.db import story_state
from monitor.matching.base import Story
from monitor.matching.matcher import Matcher
from monitor.wording import plural

__all__ = ["BackfillChange", "BackfillSummary", "backfill"]

log = logging.getLogger("monitor.backfill")


@dataclass(frozen=True, slots=True)
class BackfillChange:
    """One article whose match would be (or was) added or removed."""

    article_id: int
    title: str
    url: str
    old_score: float | None       # None: no stored match
    new_score: float              # the new verdict's score (below threshold when removed)


@dataclass(frozen=True, slots=True)
class BackfillSummary:
    story_id: str
    dry_run: bool
    scanned: int                  # articles in the time range, scored again
    added: int
    removed: int
    updated: int                  # matches that still hold (score and evidence refreshed)
    added_samples: tuple[BackfillChange, ...]
    removed_samples: tuple[BackfillChange, ...]
    sightings: int = 0            # names recorded for story evolution (not in a dry run)


def backfill(store: Any, story: Story, *, since: datetime | None = None, until: datetime | None = None,
             dry_run: bool = False, batch: int = 500, samples: int = 5,
             progress: Callable[[str], None] | None = None, at: datetime | None = None) -> BackfillSummary:
    """Re-score `story` on the stored articles in [since, until); write the changes unless `dry_run`."""
    at = at or datetime.now(UTC)
    progress = progress or log.info
    progress(f"backfill {story.id}: scoring the stored articles")
    # A disabled story can be backfilled before it is switched on.
    matcher = Matcher([replace(story, enabled=True)])
    stored = store.match_scores(story.id)
    scanned = added = removed = updated = sightings = 0
    added_samples: list[BackfillChange] = []
    removed_samples: list[BackfillChange] = []
    pending_add: list[tuple[int, MatchResult]] = []
    pending_update: list[tuple[int, MatchResult]] = []
    pending_remove: list[int] = []
    pending_learn: list[tuple[int, Article, MatchResult]] = []
    pending_decided: list[tuple[int, MatchResult | None]] = []   # every new verdict (None: not a candidate)

    def flush() -> None:
        nonlocal sightings
        if dry_run or not (pending_add or pending_update or pending_remove or pending_decided):
            return
        store.write_matches(story.id, add=pending_add, update_=pending_update, remove=pending_remove, at=at)
        store.write_near_misses(story.id, pending_decided, at=at)
        story_state.forget_sightings(store, story.id, pending_remove)
        for article_id, article, result in pending_learn:
            sightings += story_state.record_learning(store, article_id, article, [result], [story], at=at)
        for pending in (pending_add, pending_update, pending_remove, pending_learn, pending_decided):
            pending.clear()

    for row in store.iter_articles(batch=batch):
        when = row.published or row.fetched_at
        if (since is not None and when < since) or (until is not None and when >= until):
            continue
        scanned += 1
        article = row.article()
        result = next((r for r in matcher.match(article) if r.story_id == story.id), None)
        old = stored.get(row.id)
        pending_decided.append((row.id, result))
        if result is not None and result.matched:
            pending_learn.append((row.id, article, result))
            if old is None:
                added += 1
                pending_add.append((row.id, result))
                if len(added_samples) < samples:
                    added_samples.append(BackfillChange(row.id, row.title, row.final_url, None, result.score))
            else:
                updated += 1
                pending_update.append((row.id, result))
        elif old is not None:
            removed += 1
            pending_remove.append(row.id)
            if len(removed_samples) < samples:
                removed_samples.append(BackfillChange(row.id, row.title, row.final_url, old,
                                                      result.score if result is not None else 0.0))
        if scanned % batch == 0:
            flush()
            progress(f"backfill {story.id}: {plural(scanned, 'article')} scored, {plural(added, 'match')} "
                     f"{'to add' if dry_run else 'added'}, {removed} {'to remove' if dry_run else 'removed'}")
    flush()
    return BackfillSummary(story_id=story.id, dry_run=dry_run, scanned=scanned, added=added, removed=removed,
                           updated=updated, added_samples=tuple(added_samples),
                           removed_samples=tuple(removed_samples), sightings=sightings)

