"""Story model versions: what a story decides with, fixed under a content hash.

A version is the story as configured (its *definition*), the names it learned from confident
matches and the analysts' judgments it follows (with the profile those judgments moved). Every
decision records the version that made it, so the same article and the same version give the
same decision in any process, in any order, on any daemon.

A new version is only ever made on purpose:
- the definition changed (someone edited the story): the first process to see it records it,
  carrying over what the previous version had learned and been told;
- `monitor stories rebuild ID`, `monitor stories backfill ID` (how `monitor judge` is applied) or
  the daemon's scheduled rebuild (`schedule.rebuild_stories`): learned names and judgments are
  read from the database again.
Nothing else, neither a process starting nor the order in which articles arrive, changes one.

    stories = current_stories(store, configured)      # what every command and daemon matches with
    current = CurrentMatcher(store, configured)        # a daemon's: current() compiles only after a change
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from monitor._types import JUDGMENT_LABELS, Article, JudgmentLabel
from monitor.db import models as m
from monitor.db.base import chunks
from monitor.db.store import Store
from monitor.matching.base import Story
from monitor.matching.evolve import with_learned
from monitor.matching.feedback import ArticleText, moved_profile
from monitor.matching.matcher import Matcher

__all__ = ["JUDGMENT_LABELS", "StoryVersion", "definition_hash", "model_hash", "current_stories", "current_if_stored",
           "CurrentMatcher", "rebuild", "versions", "Judgment", "judge", "judgments", "judgment_history",
           "judged_texts", "judged_articles"]

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


def _newest_ids(conn: Any, story_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """story id -> {definition: id of the newest version with that definition}: ids and hashes
    only, none of the versions' JSON."""
    newest: dict[str, dict[str, int]] = {}
    version = m.StoryVersion
    for chunk in chunks(story_ids):   # a bounded IN list: SQLite allows 32,766 parameters, a platform has more stories
        stmt = (select(version.story_id, version.definition, func.max(version.id))
                .where(version.story_id.in_(chunk)).group_by(version.story_id, version.definition))
        for story_id, definition, newest_id in conn.execute(stmt):
            newest.setdefault(story_id, {})[definition] = newest_id
    return newest


def _versions_at(conn: Any, ids: Sequence[int]) -> dict[int, StoryVersion]:
    """row id -> the version stored there."""
    found: dict[int, StoryVersion] = {}
    for chunk in chunks(ids):
        for row in conn.execute(select(m.StoryVersion).where(m.StoryVersion.id.in_(chunk))):
            found[row.id] = StoryVersion.of(row)
    return found


def _history(conn: Any, story_id: str) -> list[StoryVersion]:
    """A story's versions, newest first."""
    stmt = select(m.StoryVersion).where(m.StoryVersion.story_id == story_id).order_by(m.StoryVersion.id.desc())
    return [StoryVersion.of(row) for row in conn.execute(stmt)]


def _record(conn: Connection, store: Store, version: StoryVersion) -> None:
    values = {"story_id": version.story_id, "version": version.version, "definition": version.definition,
              "learned": list(version.learned), "judgments": dict(version.judgments),
              "terms": dict(version.terms) if version.terms is not None else None, "reason": version.reason,
              "created_at": version.created_at}
    # Two daemons seeing the same new definition record the same content once.
    conn.execute(store.insert(m.StoryVersion).values(values)
                 .on_conflict_do_nothing(index_elements=["story_id", "version"]))


def current_stories(store: Store, stories: Sequence[Story], *, at: datetime | None = None,
                    record: bool = True) -> list[Story]:
    """The stories as their current versions say; a definition seen for the first time is recorded
    (unless `record` is false: a command that only reads computes the same version without it)."""
    return _current(store, stories, [definition_hash(s) for s in stories], at=at, record=record)


def _current(store: Store, stories: Sequence[Story], definitions: Sequence[str], *, at: datetime | None,
             record: bool) -> list[Story]:
    """current_stories, with each story's definition hash given (`definitions[i]` is `stories[i]`'s)."""
    if not stories:
        return []
    at = at or datetime.now(UTC)
    out = []
    with store.transaction() as conn:
        newest = _newest_ids(conn, [s.id for s in stories])
        # One row a story: the newest version of its definition, else the newest of any (what a
        # new definition carries over); reading every version of every story cost a tick seconds.
        wanted = []
        for story, definition in zip(stories, definitions, strict=True):
            ids = newest.get(story.id, {})
            wanted.append(ids.get(definition, max(ids.values(), default=None)))
        rows = _versions_at(conn, sorted({i for i in wanted if i is not None}))
        for story, definition, wanted_id in zip(stories, definitions, wanted, strict=True):
            current = rows.get(wanted_id) if wanted_id is not None else None
            if current is None or current.definition != definition:
                # Carry over what the previous definition learned and was told; its moved profile
                # was moved from other terms and is dropped until the next rebuild.
                before = current
                learned = before.learned if before else ()
                judged = before.judgments if before else {}
                current = StoryVersion(story.id, model_hash(definition, learned, judged, None), definition, learned,
                                       judged, None, "definition changed" if before else "first seen", at)
                if record:
                    _record(conn, store, current)
            out.append(_apply(story, current))
    return out


def _versions_fingerprint(store: Store) -> tuple[int, int | None]:
    """(row count, newest id) of the versions table: versions are only ever added, never changed
    nor deleted, so any new version, by any process, changes it."""
    with store.transaction() as conn:
        count, newest = conn.execute(select(func.count(), func.max(m.StoryVersion.id))).one()
    return int(count), newest


class CurrentMatcher:
    """The matcher of `stories` at their current versions, compiled again only when one changed:
    the one way a matcher is built with a database (monitor.runtime: the daemon, the service,
    `stories test`, `eval`, backfill and the API), asked for on every tick by a daemon.

    Each call reads a fingerprint of the versions table first (one row). While it is unchanged,
    the matcher of the last call is returned and nothing else is read; when it changed (a version
    recorded by any process: rebuilt, judged, backfilled, a new definition), the stories' current
    versions are read (one row a story) and the stories compiled again only if a (story, version)
    pair differs. Compiling 10,000 stories takes tens of seconds. Safe to share between threads.
    """

    def __init__(self, store: Store, stories: Sequence[Story]) -> None:
        self._store = store
        self._stories = list(stories)
        self._definitions: list[str] | None = None      # the stories' own hashes: they never change
        self._fingerprint: tuple[int, int | None] | None = None
        self._versions: list[tuple[str, str | None]] = []
        self._matcher: Matcher | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Matcher:
        with self._lock:
            # Read before the versions: a version added in between is then seen again next call.
            fingerprint = _versions_fingerprint(self._store)
            if self._matcher is not None and fingerprint == self._fingerprint:
                return self._matcher
            if self._definitions is None:
                self._definitions = [definition_hash(s) for s in self._stories]
            stories = _current(self._store, self._stories, self._definitions, at=None, record=True)
            versions = [(s.id, s.version) for s in stories]
            if self._matcher is None or versions != self._versions:
                self._matcher = Matcher(stories)
            self._fingerprint, self._versions = fingerprint, versions
            return self._matcher


def current_if_stored(database_url: str, story: Story) -> Story:
    """`story` as its current version in the database, when the database exists and is current;
    else as configured. For commands that only read (`stories show`, `stories test`): they never
    create a database nor record a version."""
    from pathlib import Path

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


def versions(store: Store, story_id: str) -> list[StoryVersion]:
    """A story's versions, newest first."""
    with store.transaction() as conn:
        return _history(conn, story_id)


def judgments(store: Store, story_id: str) -> dict[str, tuple[str, str, str | None, datetime]]:
    """Canonical URL -> (label, author, note, when) of the latest judgment on each article."""
    stmt = (select(m.Judgment.url, m.Judgment.label, m.Judgment.author, m.Judgment.note, m.Judgment.created_at)
            .where(m.Judgment.story_id == story_id).order_by(m.Judgment.id))
    with store.transaction() as conn:
        return {url: (label, author, note, when) for url, label, author, note, when in conn.execute(stmt)}


@dataclass(frozen=True, slots=True)
class Judgment:
    """An analyst's label on an article for a story, with when and by whom."""

    story_id: str
    url: str                      # canonical, as the article is (or will be) stored
    label: JudgmentLabel
    author: str
    note: str | None
    created_at: datetime
    title: str | None = None      # the stored article's title; None while the article is not stored
    in_force: bool = True         # False once a later judgment of the same story and article replaced it

    @property
    def stored(self) -> bool:
        return self.title is not None


MAX_URL = 2000
MAX_AUTHOR = 200
MAX_NOTE = 2000


def checked_label(label: str) -> JudgmentLabel:
    """`label` as a judgment's label; ValueError unless it is one."""
    for known in JUDGMENT_LABELS:
        if label == known:
            return known
    raise ValueError(f"a judgment is one of {', '.join(JUDGMENT_LABELS)}, not {label!r}")


def checked_url(url: str) -> str:
    """`url` stripped; ValueError unless it is an http(s) address."""
    from monitor.urls import is_http_url

    if not is_http_url(url):
        raise ValueError(f"{url[:200]!r} is not an http(s) URL of an article")
    if len(url) > MAX_URL:
        raise ValueError(f"the URL is longer than {MAX_URL} characters ({len(url)})")
    return url.strip()


def checked_author(author: str) -> str:
    """`author` with its whitespace collapsed; ValueError when empty or too long."""
    author = " ".join(author.split())
    if not author or len(author) > MAX_AUTHOR:
        raise ValueError(f"the author must be a name of 1 to {MAX_AUTHOR} characters")
    return author


def checked_note(note: str | None) -> str | None:
    """`note` stripped (None when empty); ValueError when too long."""
    note = note.strip() if note is not None else None
    if note is not None and len(note) > MAX_NOTE:
        raise ValueError(f"the note is longer than {MAX_NOTE} characters ({len(note)})")
    return note or None


def judge(store: Store, story_id: str, url: str, label: str, *, author: str, note: str | None = None,
          at: datetime | None = None) -> Judgment:
    """Record an analyst's label on the article at `url`; it takes effect with the story's next
    version (`rebuild`, `monitor stories backfill`). `url` is canonicalised as articles are stored,
    and an article's address after redirects finds it too. An article not stored yet may be judged:
    the judgment waits for it. Raises ValueError, saying what is wrong, on a bad label, URL,
    author or note."""
    from monitor.urls import canonicalize

    label = checked_label(label)
    url, author, note = checked_url(url), checked_author(author), checked_note(note)
    canonical = canonicalize(url)
    at = at or datetime.now(UTC)
    with store.transaction() as conn:
        found = conn.execute(select(m.Article.url, m.Article.title).where(m.Article.url == canonical)).first()
        if found is None:       # the address the reader saw, after redirects (not indexed: only then)
            found = conn.execute(select(m.Article.url, m.Article.title)
                                 .where(m.Article.final_url.in_([url, canonical])).order_by(m.Article.id).limit(1)).first()
        canonical, title = (found.url, found.title) if found is not None else (canonical, None)
        conn.execute(store.insert(m.Judgment).values(
            story_id=story_id, url=canonical, label=label, note=note, author=author, created_at=at))
    return Judgment(story_id, canonical, label, author, note, at, title)


def judged_articles(store: Store, story_id: str) -> list[tuple[Article, str]]:
    """The stored articles judged on `story_id`, each with the judgment in force; judgments whose
    article is not stored yet are left out."""
    labels = {url: label for url, (label, *_rest) in judgments(store, story_id).items()}
    return [(row.article(), labels[row.url]) for row in store.articles_at(labels)]


def judgment_history(store: Store, story_id: str) -> list[Judgment]:
    """Every judgment made on `story_id`, newest first, with the judged article's title when stored."""
    stmt = (select(m.Judgment.url, m.Judgment.label, m.Judgment.author, m.Judgment.note, m.Judgment.created_at,
                   m.Article.title)
            .outerjoin(m.Article, m.Article.url == m.Judgment.url)
            .where(m.Judgment.story_id == story_id).order_by(m.Judgment.id.desc()))
    seen: set[str] = set()
    history = []
    with store.transaction() as conn:
        for url, label, author, note, when, title in conn.execute(stmt):
            history.append(Judgment(story_id, url, checked_label(label), author, note, when, title,
                                    in_force=url not in seen))
            seen.add(url)
    return history


def rebuild(store: Store, story: Story, *, reason: str = "rebuilt", dry_run: bool = False,
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
        with store.transaction() as conn:
            _record(conn, store, version)
    return _apply(story, version), changed


def _moved_terms(store: Store, story: Story, judged: Mapping[str, str]) -> dict[str, float] | None:
    """The profile moved toward the articles judged on and away from those judged off (Rocchio,
    monitor.matching.feedback); judgments whose article is not stored yet wait for it."""
    texts = judged_texts(store, [url for url, label in judged.items() if label in ("on", "off")])
    return moved_profile(story.terms, [texts[u] for u in sorted(texts) if judged[u] == "on"],
                         [texts[u] for u in sorted(texts) if judged[u] == "off"])


def judged_texts(store: Store, urls: Sequence[str]) -> dict[str, ArticleText]:
    """Canonical URL -> (title, summary, body) of the stored articles among `urls`."""
    if not urls:
        return {}
    stmt = select(m.Article.url, m.Article.title, m.Article.summary, m.Article.body).where(m.Article.url.in_(list(urls)))
    with store.transaction() as conn:
        return {url: (title, summary, body) for url, title, summary, body in conn.execute(stmt)}


def _on_story(store: Store, story: Story, names: Sequence[str]) -> list[str]:
    """The learned names that mark the story rather than its setting or a neighbouring story: of the
    stored articles that name one, nearly all must be the story's matches ("Oval Office", a press
    secretary, a person whose own story came before or after are named by other articles too)."""
    if not names:
        return []
    matched = select(m.Match.article_id).where(m.Match.story_id == story.id)
    kept = []
    with store.transaction() as conn:
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
