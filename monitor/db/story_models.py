"""Story model versions: what a story decides with, fixed under a content hash.

A version is the story as configured (its *definition*), the names it learned from confident
matches and the analysts' judgments it follows (with the profile those judgments moved). Every
decision records the version that made it, so the same article and the same version give the
same decision in any process, in any order, on any daemon.

A new version is only ever made on purpose:
- the definition changed (someone edited the story): the first process to see it records it,
  carrying over what the previous version had learned and been told;
- `monitor stories rebuild ID`, the daemon's scheduled rebuild (`schedule.rebuild_stories`), or
  `monitor judge`: learned names and judgments are read from the database again.
Nothing else, neither a process starting nor the order in which articles arrive, changes one.

    stories = current_stories(store, configured)      # what every command and daemon matches with
    matcher = build_matcher(store, configured)
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select

from monitor.db import models as m
from monitor.db.engine import dialect_insert, transaction
from monitor.matching.base import Story
from monitor.matching.evolve import with_learned
from monitor.matching.matcher import Matcher
from monitor.matching.profile import tfidf_vector
from monitor.matching.text import tokenize

__all__ = ["JUDGMENT_LABELS", "StoryVersion", "definition_hash", "model_hash", "current_stories", "current_if_stored",
           "build_matcher", "rebuild", "versions", "judge", "judgments"]

JUDGMENT_LABELS = ("on", "off", "brief")
# How far judged articles move a story's profile (Rocchio): toward the mean of those judged on,
# away from the mean of those judged off. The reference keeps the larger share.
_TOWARD_ON = 0.5
_AWAY_FROM_OFF = 0.25
# A learned name must mark the story, not its setting: at least this share of the stored articles
# that name it must be the story's matches ("Oval Office" and a press secretary appear in all the
# White House's news; a person whose own story came before is named by that story's articles).
_MIN_NAME_PRECISION = 0.85


@dataclass(frozen=True, slots=True)
class StoryVersion:
    story_id: str
    version: str
    definition: str
    learned: tuple[str, ...]
    judgments: Mapping[str, str]
    terms: Mapping[str, float] | None
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> StoryVersion:
        return cls(story_id=row.story_id, version=row.version, definition=row.definition,
                   learned=tuple(row.learned or ()), judgments=dict(row.judgments or {}),
                   terms=dict(row.terms) if row.terms else None, reason=row.reason, created_at=row.created_at)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _definition(story: Story) -> dict[str, Any]:
    """The parts of a story that decide, with each rule's code version (a new rule version is a new model)."""
    return {
        "id": story.id, "threshold": story.threshold, "bias": story.bias,
        "start": story.start.isoformat() if story.start else None, "end": story.end.isoformat() if story.end else None,
        "names": [[n.name, list(n.aliases), list(n.weak)] for n in story.names],
        "places": [[n.name, list(n.aliases), list(n.weak)] for n in story.places],
        "facets": [[f.label, list(f.entries)] for f in story.facets],
        "anchors": [list(story.anchors), story.anchors_needed], "terms": dict(story.terms),
        "rules": [[r.name, dict(r.params), r.weight, r.required, getattr(r.factory, "version", None)]
                  for r in story.rules],
    }


def definition_hash(story: Story) -> str:
    return _digest(_definition(story))


def model_hash(definition: str, learned: Sequence[str], judgments: Mapping[str, str],
               terms: Mapping[str, float] | None) -> str:
    return _digest({"definition": definition, "learned": list(learned), "judgments": dict(judgments),
                    "terms": dict(terms) if terms is not None else None})


def _apply(story: Story, version: StoryVersion) -> Story:
    [story] = with_learned([replace(story, learned=())], {story.id: version.learned})
    return replace(story, version=version.version, judged=dict(version.judgments),
                   terms=dict(version.terms) if version.terms is not None else story.terms)


def _latest(conn: Any, story_ids: Sequence[str]) -> dict[str, list[StoryVersion]]:
    """story id -> its versions, newest first."""
    found: dict[str, list[StoryVersion]] = {}
    stmt = select(m.StoryVersion).where(m.StoryVersion.story_id.in_(list(story_ids))).order_by(m.StoryVersion.id.desc())
    for row in conn.execute(stmt):
        found.setdefault(row.story_id, []).append(StoryVersion.of(row))
    return found


def _record(conn: Any, engine: Any, version: StoryVersion) -> None:
    values = {"story_id": version.story_id, "version": version.version, "definition": version.definition,
              "learned": list(version.learned), "judgments": dict(version.judgments),
              "terms": dict(version.terms) if version.terms is not None else None, "reason": version.reason,
              "created_at": version.created_at}
    # Two daemons seeing the same new definition record the same content once.
    conn.execute(dialect_insert(engine)(m.StoryVersion).values(values)
                 .on_conflict_do_nothing(index_elements=["story_id", "version"]))


def current_stories(store: Any, stories: Sequence[Story], *, at: datetime | None = None,
                    record: bool = True) -> list[Story]:
    """The stories as their current versions say; a definition seen for the first time is recorded
    (unless `record` is false: a command that only reads computes the same version without it)."""
    if not stories:
        return []
    at = at or datetime.now(UTC)
    out = []
    with transaction(store.engine) as conn:
        known = _latest(conn, [s.id for s in stories])
        for story in stories:
            definition = definition_hash(story)
            history = known.get(story.id, [])
            current = next((v for v in history if v.definition == definition), None)
            if current is None:
                # Carry over what the previous definition learned and was told; its moved profile
                # was moved from other terms and is dropped until the next rebuild.
                before = history[0] if history else None
                learned = before.learned if before else ()
                judged = before.judgments if before else {}
                current = StoryVersion(story.id, model_hash(definition, learned, judged, None), definition, learned,
                                       judged, None, "definition changed" if before else "first seen", at)
                if record:
                    _record(conn, store.engine, current)
            out.append(_apply(story, current))
    return out


def build_matcher(store: Any | None, stories: Sequence[Story]) -> Matcher:
    """The one way to build a matcher: the daemon, the service, `stories test`, `eval`, backfill and
    the API all match with this. Without a database, the stories as configured (no version)."""
    return Matcher(current_stories(store, stories) if store is not None else list(stories))


def current_if_stored(database_url: str, story: Story) -> Story:
    """`story` as its current version in the database, when the database exists and is current;
    else as configured. For commands that only read (`stories show`, `stories test`): they never
    create a database nor record a version."""
    from pathlib import Path

    from monitor.db.store import Store
    from monitor.exceptions import MonitorError

    if database_url.startswith("sqlite:///") and not Path(database_url.removeprefix("sqlite:///")).exists():
        return story
    try:
        store = Store.open(database_url, create=False)
    except MonitorError:
        return story
    try:
        return current_stories(store, [story], record=False)[0]
    finally:
        store.close()


def versions(store: Any, story_id: str) -> list[StoryVersion]:
    """A story's versions, newest first."""
    with transaction(store.engine) as conn:
        return _latest(conn, [story_id]).get(story_id, [])


def judgments(store: Any, story_id: str) -> dict[str, tuple[str, str, str | None, datetime]]:
    """Canonical URL -> (label, author, note, when) of the latest judgment on each article."""
    stmt = (select(m.Judgment.url, m.Judgment.label, m.Judgment.author, m.Judgment.note, m.Judgment.created_at)
            .where(m.Judgment.story_id == story_id).order_by(m.Judgment.id))
    with transaction(store.engine) as conn:
        return {url: (label, author, note, when) for url, label, author, note, when in conn.execute(stmt)}


def judge(store: Any, story_id: str, url: str, label: str, *, author: str, note: str | None = None,
          at: datetime | None = None) -> None:
    """Record an analyst's label; it takes effect with the story's next version (`rebuild`)."""
    if label not in JUDGMENT_LABELS:
        raise ValueError(f"a judgment is one of {', '.join(JUDGMENT_LABELS)}, not {label!r}")
    with transaction(store.engine) as conn:
        conn.execute(dialect_insert(store.engine)(m.Judgment).values(
            story_id=story_id, url=url, label=label, note=note, author=author, created_at=at or datetime.now(UTC)))


def rebuild(store: Any, story: Story, *, reason: str = "rebuilt", dry_run: bool = False,
            at: datetime | None = None) -> tuple[Story, bool]:
    """The story's next version from what the database now holds (learned names, judgments);
    recorded unless `dry_run`. Returns the story as that version decides, and whether it is new."""
    from monitor.db.story_state import learned_names

    at = at or datetime.now(UTC)
    [base] = current_stories(store, [story], at=at)
    definition = definition_hash(story)
    learned = _on_story(store, base, learned_names(store, [story.id]).get(story.id, ()))
    judged = {url: label for url, (label, *_rest) in judgments(store, story.id).items()}
    terms = _moved_terms(store, story, judged)
    version = StoryVersion(story.id, model_hash(definition, learned, judged, terms), definition, tuple(learned),
                           judged, terms, reason, at)
    changed = version.version != base.version
    if changed and not dry_run:
        with transaction(store.engine) as conn:
            _record(conn, store.engine, version)
    return _apply(story, version), changed


def _moved_terms(store: Any, story: Story, judged: Mapping[str, str]) -> dict[str, float] | None:
    """The profile moved toward the articles judged on and away from those judged off (Rocchio)."""
    wanted = [url for url, label in judged.items() if label in ("on", "off")]
    if not wanted or not story.terms:
        return None
    stmt = select(m.Article.url, m.Article.title, m.Article.summary, m.Article.body).where(m.Article.url.in_(wanted))
    with transaction(store.engine) as conn:
        texts = {url: (title, summary, body) for url, title, summary, body in conn.execute(stmt)}
    if not texts:
        return None

    def unit(vector: Mapping[str, float]) -> dict[str, float]:
        norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        return {t: w / norm for t, w in vector.items()}

    moved: Counter[str] = Counter(unit(story.terms))
    for label, share in (("on", _TOWARD_ON), ("off", -_AWAY_FROM_OFF)):
        group = [unit(tfidf_vector(tokenize(t) * 2 + tokenize(s or "") + tokenize(b)))
                 for url, (t, s, b) in sorted(texts.items()) if judged[url] == label]
        for vector in group:
            for term, weight in vector.items():
                moved[term] += share * weight / len(group)
    heaviest = max(moved.values(), default=0.0)
    if heaviest <= 0.0:
        return None
    return {t: round(w / heaviest, 4) for t, w in sorted(moved.items()) if round(w / heaviest, 4) > 0.0}


def _on_story(store: Any, story: Story, names: Sequence[str]) -> list[str]:
    """The learned names that mark the story rather than its setting or a neighbouring story: of the
    stored articles that name one, nearly all must be the story's matches ("Oval Office", a press
    secretary, a person whose own story came before or after are named by other articles too)."""
    if not names:
        return []
    matched = select(m.Match.article_id).where(m.Match.story_id == story.id)
    kept = []
    with transaction(store.engine) as conn:
        for name in names:
            pattern = f"%{name.lower()}%"
            mentions = or_(func.lower(m.Article.title).like(pattern), func.lower(m.Article.body).like(pattern))
            on = conn.execute(select(func.count()).select_from(m.Article)
                              .where(mentions, m.Article.id.in_(matched))).scalar_one()
            off = conn.execute(select(func.count()).select_from(m.Article)
                               .where(mentions, m.Article.id.not_in(matched))).scalar_one()
            if on and on / (on + off) >= _MIN_NAME_PRECISION:
                kept.append(name)
    return kept
