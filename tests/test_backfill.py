"""Backfill: the dry run writes nothing and announces exactly what applying it then writes."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from monitor._types import Article
from monitor.backfill import backfill
from monitor.db.store import ArticleWrite, Store
from monitor.matching import Matcher, load_stories

ARTICLES = Path(__file__).parent / "data" / "articles"
STORY = "trump-kim-summit-2018"


def _fixtures() -> list[tuple[Article, str]]:
    out = []
    for path in sorted(ARTICLES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        when = datetime.fromisoformat(data["published"])
        url = f"https://news.test/{path.stem}"
        out.append((Article(url=url, final_url=url, feed_url="https://news.test/rss", title=data["title"],
                            body=data["body"], summary=data["summary"], fetched_at=when, published=when,
                            lang=data["lang"], outlet="News Test"), data["label"]))
    return out


def _snapshot(store: Store) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(m.canonical_url, m.score, m.evidence) for m in store.matches(None, None, None)]


def test_dry_run_then_apply_then_a_stricter_story(db_url: str) -> None:
    [story] = load_stories([{"id": STORY}])
    fixtures = _fixtures()
    on = {a.url for a, label in fixtures if label == "on"}
    with Store.open(db_url, create=True) as store:
        # Stored before the story existed: articles without matches, plus one stale match.
        stale_url = "https://news.test/neg-kardashian"
        stale_match = replace(Matcher([story]).match(fixtures[0][0])[0], story_id=STORY, matched=True)
        writes = [ArticleWrite(a, [stale_match] if a.url == stale_url else [], []) for a, _ in fixtures]
        ids = {w.article.url: article_id
               for w, (article_id, _, _) in zip(writes, store.store_articles(writes, datetime.now(UTC)), strict=True)}
        stale = ids[stale_url]
        before = _snapshot(store)

        dry = backfill(store, story, dry_run=True, batch=4)
        assert _snapshot(store) == before                       # nothing written
        assert dry.scanned == len(fixtures)
        assert dry.added == len(on) and dry.removed == 1 and dry.updated == 0
        assert {c.url for c in dry.added_samples} <= on and len(dry.added_samples) == 5
        assert [c.article_id for c in dry.removed_samples] == [stale]
        assert dry.removed_samples[0].old_score is not None and dry.removed_samples[0].new_score < 0.5

        applied = backfill(store, story, batch=4)
        assert (applied.added, applied.removed, applied.updated) == (dry.added, dry.removed, dry.updated)
        assert set(store.match_scores(STORY)) == {ids[u] for u in on}
        stored = {m.canonical_url: m for m in store.matches([STORY], None, None)}
        assert all(m.evidence and m.best_passage for m in stored.values())

        # Run again: nothing to add or remove, every match refreshed.
        again = backfill(store, story, dry_run=True)
        assert (again.added, again.removed, again.updated) == (0, 0, len(on))

        # A stricter story: the dry run says which matches go, applying removes exactly those.
        strict = replace(story, threshold=0.9999)
        dry = backfill(store, strict, dry_run=True)
        assert dry.added == 0 and dry.removed > 0
        applied = backfill(store, strict)
        assert applied.removed == dry.removed
        assert len(store.match_scores(STORY)) == len(on) - dry.removed


def test_time_range_limits_what_is_rescored(sqlite_url: str) -> None:
    [story] = load_stories([{"id": STORY}])
    with Store.open(sqlite_url, create=True) as store:
        store.store_articles([ArticleWrite(article, [], []) for article, _ in _fixtures()], datetime.now(UTC))
        june = backfill(store, story, since=datetime(2018, 6, 1, tzinfo=UTC),
                        until=datetime(2018, 7, 1, tzinfo=UTC))
        assert 0 < june.scanned < len(_fixtures())
        stored = store.matches([STORY], None, None)
        assert stored and all(datetime(2018, 6, 1, tzinfo=UTC) <= m.when < datetime(2018, 7, 1, tzinfo=UTC)
                              for m in stored)
        assert len(stored) == june.added
