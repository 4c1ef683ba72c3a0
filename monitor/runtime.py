"""The runtime, built in one place: settings -> store -> stories -> matcher -> pipeline.

The daemon, `run --once`, the ingest commands, the service behind `monitor serve` and reader's
plugin all open the monitor here, so they see the same database, the same stories at their
current versions, and send alerts the same way:

    with Runtime.open(settings) as runtime, runtime.pipeline() as pipeline:
        summary = pipeline.run_pass(feeds)
        runtime.deliver()
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from monitor._types import Article, MatchResult
from monitor.config import Settings
from monitor.db.store import Store
from monitor.db.story_models import CurrentMatcher
from monitor.exceptions import MonitorError
from monitor.matching import Matcher, Story
from monitor.pipeline import Pipeline

log = logging.getLogger("monitor.runtime")


@contextmanager
def open_store(settings: Settings, *, create: bool = True, sync_feeds: bool = True) -> Iterator[Store]:
    """The store of `settings`, closed on leaving; with `sync_feeds`, the configured [[feeds]] are
    added to it (and their titles and intervals updated) first."""
    store = _open_store(settings, create=create, sync_feeds=sync_feeds)
    try:
        yield store
    finally:
        store.close()


class Runtime:
    """An opened monitor: its settings, store and stories, and the matcher and pipeline made of them."""

    def __init__(self, settings: Settings, store: Store, stories: Sequence[Story]) -> None:
        self.settings = settings
        self.store = store
        self.stories = list(stories)
        self._current = CurrentMatcher(store, self.stories)   # compiled again only when a version changed

    @classmethod
    def open(cls, settings: Settings, *, stories: Sequence[Story] | None = None, create: bool = True,
             sync_feeds: bool = True) -> Runtime:
        """Open the store of `settings` (see `open_store`) with `stories`, else the configured ones."""
        if stories is None:
            from monitor.config import configured_stories

            stories = configured_stories(settings)
        return cls(settings, _open_store(settings, create=create, sync_feeds=sync_feeds), stories)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def matcher(self) -> LazyMatcher:
        """The stories at their current versions in the database, as of its first use: the matcher
        the last call compiled while no (story, version) changed, else compiled anew."""
        return LazyMatcher(self._current)

    def pipeline(self, *, progress: Callable[[str], None] | None = None) -> Pipeline:
        """A pipeline on this store and the current matcher; the caller closes it."""
        return Pipeline(self.settings, self.store, self.matcher(), progress=progress)

    def prepare_delivery(self) -> None:
        """Check the alerts and digests against the stories and register new alerts (ConfigError
        for a mistake, so that it stops a command at once)."""
        from monitor.alerts import prepare_delivery

        prepare_delivery(self.settings, self.store, self.stories, datetime.now(UTC))

    def deliver(self) -> None:
        """Send the alerts and scheduled digests due now (see `deliver`)."""
        deliver(self.settings, self.store, self.stories)


def _open_store(settings: Settings, *, create: bool, sync_feeds: bool) -> Store:
    store = Store.open(settings.database_url, create=create)
    try:
        if sync_feeds and settings.feeds:
            store.sync_feeds([(f.url, f.title, int(f.interval) if f.interval else None) for f in settings.feeds])
    except BaseException:
        store.close()
        raise
    return store


class LazyMatcher:
    """A Matcher made by `build` when first used; until then it has counted no rule errors.
    Safe to share between threads (it is built once)."""

    def __init__(self, build: Callable[[], Matcher]) -> None:
        self._build: Callable[[], Matcher] | None = build
        self._matcher: Matcher | None = None
        self._lock = threading.Lock()

    @property
    def rule_errors(self) -> int:
        return 0 if self._matcher is None else self._matcher.rule_errors

    @property
    def stories(self) -> list[Story]:
        return self._built().stories

    def match(self, article: Article) -> list[MatchResult]:
        return self._built().match(article)

    def __getattr__(self, name: str) -> Any:
        # Only reached for the rest of what the Matcher has (explain, ...).
        if name.startswith("__") or name in ("_build", "_matcher", "_lock"):
            raise AttributeError(name)
        return getattr(self._built(), name)

    def __copy__(self) -> LazyMatcher:
        """The same compiled stories (built once, for both) with a rule-error count of its own, from
        0: what one pass matches with (monitor.pipeline.passes)."""
        def own_count() -> Matcher:
            mine = copy.copy(self._built())
            mine.rule_errors = 0
            return mine
        return LazyMatcher(own_count)

    def _built(self) -> Matcher:
        with self._lock:
            if self._matcher is None:
                assert self._build is not None
                self._matcher, self._build = self._build(), None
            return self._matcher


def deliver(settings: Settings, store: Store, stories: Sequence[Story]) -> None:
    """Send the alerts and scheduled digests due now. A failure is logged: it never stops the daemon."""
    if not settings.alerts and not settings.digests:
        return
    from monitor.alerts import deliver_alerts, run_due_digests

    now = datetime.now(UTC)
    try:
        if settings.alerts:
            alerts = deliver_alerts(settings, store, now, stories=stories)
            if alerts.messages or alerts.failed:
                log.info("%s", alerts.line())
        if settings.digests:
            digests = run_due_digests(settings, store, stories, now)
            if digests.sent or digests.failed:
                log.info("%s", digests.line())
    except MonitorError as e:
        log.error("delivering alerts and digests: %s", e)
    except Exception:
        log.exception("delivering alerts and digests failed unexpectedly")
