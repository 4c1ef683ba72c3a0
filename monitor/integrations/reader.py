"""A plugin for reader (the Python feed-reader library): its entries go to the monitor.

People who already poll their feeds with reader need not fetch every feed twice:

    from reader import make_reader
    reader = make_reader("db.sqlite", plugins=["monitor.integrations.reader:init_reader"])
    reader.update_feeds()                       # new and modified entries are handed to the monitor
    monitor_for(reader).wait_idle()             # a script that exits now: let the monitor finish

`init_reader` opens the monitor configured by $MONITOR_CONFIG, else ./monitor.toml (as the
`monitor` command finds it); `plugin(config=...)` names the configuration explicitly.

Inside reader's update call the hooks only convert entries and queue them in the monitor's
inbox (one short insert per feed); page fetch, extraction and matching run in the
MonitorService worker thread, outside reader's update.

Catch-up. reader stores a feed's entries before its hooks run, so entries can reach reader's
database without reaching the monitor: a crash in between, the monitor's database being
unreachable, the plugin being added to an existing reader database, or reader updated by a
program without the plugin (reader's own CLI or web app). After every feed it handed over
completely, the plugin records reader's `last_updated` of the feed in a plugin tag of the feed
(`.plugin.monitor.synced`, naming the monitor database by a hash of its URL). A feed whose
`last_updated` differs from its tag has entries the monitor may have missed: its entries are
compared with those the monitor recorded, and the missing ones handed over. That happens when
such a feed is next updated with the plugin, and for every feed in `sync(reader)` (or
`monitor reader-sync READER_DB`). Feeds whose tag is current are skipped, so a sync on every
start costs one tag read per feed, not the whole history. Handing an entry over twice is
harmless: the monitor deduplicates by entry key.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor._types import FeedEntry
from monitor.config import Settings
from monitor.exceptions import ConfigError, MonitorError
from monitor.feeds import external_entry
from monitor.pipeline import PassSummary
from monitor.wording import plural

if TYPE_CHECKING:
    from reader import Reader

    from monitor.service import MonitorService

__all__ = ["close_monitor", "entry_of", "init_reader", "monitor_for", "plugin", "sync", "sync_database"]

log = logging.getLogger("monitor.integrations.reader")

ORIGIN = "reader"
PLUGIN_NAME = "monitor"
_TAG_KEY = "synced"
_FLUSH_AT = 200            # entries buffered for one feed before they are queued without waiting for its end
_SCAN_BATCH = 500          # entries compared with the monitor's records at once during a catch-up

ConfigInput = str | os.PathLike[str] | Settings | None

# The plugin's state for each reader: keyed weakly, so the reader can be collected as usual.
_BRIDGES: weakref.WeakKeyDictionary[Any, _Bridge] = weakref.WeakKeyDictionary()
_BRIDGES_LOCK = threading.Lock()


def init_reader(reader: Reader) -> None:
    """reader's plugin entry point: `make_reader(db, plugins=["monitor.integrations.reader:init_reader"])`.

    The monitor is the one configured by $MONITOR_CONFIG, else ./monitor.toml, else the defaults.
    """
    plugin()(reader)


def plugin(config: ConfigInput = None, *, catch_up: bool = True, start: bool = True) -> Callable[[Reader], None]:
    """An `init_reader`-like callable for `make_reader(..., plugins=[plugin(config="monitor.toml")])`.

    `config` is a configuration file or `Settings` (None: $MONITOR_CONFIG, else ./monitor.toml).
    `catch_up=False` hands over only the entries reader reports while the plugin runs, never
    earlier ones (no tags are written). `start=False` leaves the worker stopped: the caller
    processes the inbox itself (`monitor_for(reader).process_pending()`).
    """
    def init(reader: Reader) -> None:
        with _BRIDGES_LOCK:
            if reader in _BRIDGES:
                raise RuntimeError("the monitor plugin is already installed on this reader")
            from monitor.service import MonitorService

            service = MonitorService.from_config(
                config if config is None or isinstance(config, Settings) else os.fspath(config))
            bridge = _Bridge(service, catch_up=catch_up)
            _BRIDGES[reader] = bridge
        # reader offers no close hook (and a closed reader may be used again), so the monitor is
        # closed when the reader is garbage-collected or the interpreter exits, or by close_monitor().
        bridge.finalizer = weakref.finalize(reader, bridge.close)
        reader.before_feed_update_hooks.append(bridge.before_feed)
        reader.after_entry_update_hooks.append(bridge.after_entry)
        reader.after_feed_update_hooks.append(bridge.after_feed)
        reader.after_feeds_update_hooks.append(bridge.after_feeds)
        if start:
            service.start()
        log.info("reader entries go to the monitor database %s",
                 service.store.engine.url.render_as_string(hide_password=True))

    return init


def monitor_for(reader: Reader) -> MonitorService:
    """The MonitorService the plugin feeds, e.g. to `wait_idle()` before a script exits.

    Entries still buffered (a feed whose update did not finish) are queued first.
    """
    bridge = _bridge(reader)
    bridge.flush_all()
    return bridge.service


def sync(reader: Reader, *, since: datetime | None = None) -> int:
    """Hand over the entries reader has that the monitor has not recorded; the number handed over.

    Only feeds changed since the plugin last handed them over completely are compared (see the
    module's documentation). With `since`, every feed is looked at but only its entries
    published (else updated, else added to reader) from `since` on are handed over, and the feed
    counts as caught up afterwards: older entries are never handed over automatically.
    """
    return _bridge(reader).sync(reader, since=since)


def close_monitor(reader: Reader) -> None:
    """Take the plugin off `reader`: queue what is buffered, stop the worker, close the monitor.

    Done anyway when the reader is garbage-collected or the interpreter exits; a no-op when the
    plugin is not installed.
    """
    with _BRIDGES_LOCK:
        bridge = _BRIDGES.pop(reader, None)
    if bridge is None:
        return
    hooked: tuple[tuple[MutableSequence[Any], Callable[..., None]], ...] = (
        (reader.before_feed_update_hooks, bridge.before_feed),
        (reader.after_entry_update_hooks, bridge.after_entry),
        (reader.after_feed_update_hooks, bridge.after_feed),
        (reader.after_feeds_update_hooks, bridge.after_feeds))
    for hooks, hook in hooked:
        while hook in hooks:
            hooks.remove(hook)
    if bridge.finalizer is not None:
        bridge.finalizer()          # runs close() once, and no more at exit
    else:
        bridge.close()


@dataclass(frozen=True)
class ReaderSyncResult:
    """What `monitor reader-sync` did: reader's update (when asked), the catch-up, the processing."""

    feeds_updated: int
    feeds_failed: int
    new_entries: int
    modified_entries: int
    caught_up: int
    summary: PassSummary

    def lines(self) -> list[str]:
        return [f"reader: {plural(self.feeds_updated, 'feed')} updated, {self.feeds_failed} failed; "
                f"{self.new_entries} new and {plural(self.modified_entries, 'modified entry', 'modified entries')} "
                "handed over",
                f"catch-up: {plural(self.caught_up, 'entry')} reader had that the monitor had not seen",
                self.summary.line()]


def sync_database(settings: Settings, reader_db: str | os.PathLike[str], *, update: bool = False,
                  since: datetime | None = None,
                  progress: Callable[[str], None] | None = None) -> ReaderSyncResult:
    """`monitor reader-sync`: open reader's database with the plugin, update its due feeds when
    `update`, catch up (`sync`), and process everything handed over before returning.
    `progress` is told what is being done (a status line on a terminal)."""
    progress = progress or log.debug
    try:
        from reader import make_reader
        from reader.exceptions import PluginInitError, ReaderError, UpdateError
        from reader.plugins import DEFAULT_PLUGINS
    except ImportError:
        raise ConfigError("reader is not installed: pip install 'monitor[reader]' (or pip install reader)") from None
    path = Path(reader_db)
    if not path.is_file():
        raise ConfigError(f"no reader database at {path}")
    try:
        reader = make_reader(str(path), plugins=[*DEFAULT_PLUGINS, plugin(settings, start=False)])
    except PluginInitError as e:
        if isinstance(e.__cause__, MonitorError):
            raise e.__cause__ from None
        raise MonitorError(f"{path}: the monitor plugin failed to start: {e.__cause__ or e}") from e
    except ReaderError as e:
        raise MonitorError(f"{path}: cannot be opened as a reader database: {e}") from e
    try:
        # Catch up first: with --since, the feeds are then marked caught up, and the update
        # that follows hands over only its new entries instead of comparing whole histories.
        progress(f"reader: comparing {path} with what the monitor has seen")
        caught_up = sync(reader, since=since)
        updated = failed = new = modified = 0
        if update:
            try:
                for url, value in reader.update_feeds_iter():
                    progress(f"reader: updating feeds, {updated + failed + 1} done: {url}")
                    if isinstance(value, Exception):
                        failed += 1
                        log.warning("reader could not update %s: %s", url, value)
                    elif value is not None:
                        updated += 1
                        new, modified = new + value.new, modified + value.modified
            except UpdateError as e:
                log.warning("reader's update reported: %s", e)
            caught_up += sync(reader)      # feeds whose hand-over failed during the update
        progress("processing the entries handed over: pages, extraction, matching")
        summary = monitor_for(reader).process_pending()
        return ReaderSyncResult(updated, failed, new, modified, caught_up, summary)
    finally:
        close_monitor(reader)
        reader.close()


def entry_of(entry: Any) -> FeedEntry:
    """A reader Entry (or the EntryData its hooks get) as the monitor's FeedEntry."""
    contents = [c for c in getattr(entry, "content", None) or ()
                if getattr(c, "value", None) and "html" in (getattr(c, "type", None) or "text/html")]
    content = max((c.value for c in contents), key=len, default=None)
    return external_entry(
        id=entry.id,
        link=getattr(entry, "link", None),
        title=getattr(entry, "title", None) or "",
        summary_html=getattr(entry, "summary", None) or "",
        content_html=content,
        author=_author(entry),
        published=getattr(entry, "published", None) or getattr(entry, "updated", None),
        base_url=entry.feed_url,
    )


def _author(entry: Any) -> str:
    authors = getattr(entry, "authors", None)      # reader 3.24+
    if authors is not None:
        return ", ".join(a.name for a in authors if getattr(a, "name", None))
    return getattr(entry, "author", None) or ""


def _bridge(reader: Reader) -> _Bridge:
    bridge = _BRIDGES.get(reader)
    if bridge is None or bridge.closed:
        raise LookupError("the monitor plugin is not installed on this reader: "
                          "make_reader(..., plugins=['monitor.integrations.reader:init_reader'])")
    return bridge


class _Bridge:
    """The hooks and what they share for one reader. Holds no reference to the reader itself."""

    def __init__(self, service: MonitorService, *, catch_up: bool) -> None:
        self.service = service
        self.catch_up = catch_up
        self.closed = False
        self.finalizer: weakref.finalize[[], Any] | None = None
        self._database = hashlib.sha256(service.settings.database_url.encode("utf-8")).hexdigest()[:16]
        self._lock = threading.Lock()
        self._buffers: dict[str, list[FeedEntry]] = {}
        self._behind: dict[str, bool] = {}      # feed URL -> had entries the monitor may lack before this update

    # -- reader's hooks: never raise, reader's update goes on whatever the monitor does ------

    def before_feed(self, reader: Reader, feed_url: str) -> None:
        if self.catch_up:
            behind = not self._caught_up(reader, feed_url)
            with self._lock:
                self._behind[feed_url] = behind

    def after_entry(self, reader: Reader, entry: Any, status: Any) -> None:
        # NEW and MODIFIED alike: a modified entry the monitor already has is skipped by its
        # key, one it never got (plugin added later) is stored now.
        try:
            converted = entry_of(entry)
        except Exception:
            log.warning("reader entry %r of %s cannot be handed over", getattr(entry, "id", None),
                        getattr(entry, "feed_url", None), exc_info=True)
            return
        with self._lock:
            buffer = self._buffers.setdefault(entry.feed_url, [])
            buffer.append(converted)
            full = self._buffers.pop(entry.feed_url) if len(buffer) >= _FLUSH_AT else None
        if full:
            self._submit(entry.feed_url, full, _title(_feed(reader, entry.feed_url)))

    def after_feed(self, reader: Reader, feed_url: str) -> None:
        with self._lock:
            entries = self._buffers.pop(feed_url, [])
            behind = self._behind.pop(feed_url, False)
        feed = _feed(reader, feed_url)
        title = _title(feed)
        if behind:
            # The buffered entries are in reader's database too: comparing them all covers both.
            handed_over = self._scan(reader, feed_url, title) is not None
        else:
            handed_over = self._submit(feed_url, entries, title)
        if handed_over and self.catch_up and feed is not None:
            self._mark_caught_up(reader, feed)

    def after_feeds(self, reader: Reader) -> None:
        self.flush_all()     # entries of a feed whose own hook was not reached

    # -- shared by the hooks, sync and close -------------------------------------------------

    def flush_all(self) -> None:
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        for feed_url, entries in buffers.items():
            self._submit(feed_url, entries, None)

    def sync(self, reader: Reader, *, since: datetime | None) -> int:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)     # reader's times are aware, in UTC
        self.flush_all()
        handed = 0
        for feed in list(reader.get_feeds()):
            if since is None and self._caught_up(reader, feed.url):
                continue
            count = self._scan(reader, feed.url, _title(feed), since=since)
            if count is None:
                continue
            handed += count
            self._mark_caught_up(reader, feed)
        log.info("reader sync: %s handed over to the monitor", plural(handed, "entry"))
        return handed

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.flush_all()
        finally:
            self.service.close()

    def _submit(self, feed_url: str, entries: list[FeedEntry], title: str | None) -> bool:
        if not entries:
            return True
        try:
            self.service.submit(ORIGIN, feed_url, entries, feed_title=title)
            return True
        except Exception:
            # The entries stay in reader's database and the feed is not marked caught up: the
            # next update of the feed, or sync(), hands them over.
            log.error("%d entries of %s could not be handed over to the monitor; they are retried "
                      "by the next catch-up", len(entries), feed_url, exc_info=True)
            return False

    def _scan(self, reader: Reader, feed_url: str, title: str | None, *, since: datetime | None = None) -> int | None:
        """Hand over the entries of `feed_url` the monitor has not recorded; None on failure."""
        handed = 0
        try:
            for batch in _batches(_entries_of(reader, feed_url, since), _SCAN_BATCH):
                known = self.service.store.get_feed(feed_url)
                unseen = None if known is None else self.service.store.unseen_entry_keys(known.id, [e.key for e in batch])
                missing = [e for e in batch if unseen is None or e.key in unseen]
                if missing and not self._submit(feed_url, missing, title):
                    return None
                handed += len(missing)
        except Exception:
            log.error("catching up with reader's entries of %s failed", feed_url, exc_info=True)
            return None
        if handed:
            log.info("caught up with %s: %s the monitor had not seen", feed_url, plural(handed, "entry"))
        return handed

    def _tag_key(self, reader: Reader) -> str:
        return reader.make_plugin_reserved_name(PLUGIN_NAME, _TAG_KEY)

    def _caught_up(self, reader: Reader, feed_url: str) -> bool:
        """Whether every entry of the feed was handed over when reader last changed it."""
        try:
            feed = reader.get_feed(feed_url, None)
            if feed is None or feed.last_updated is None:
                return True     # never updated: reader has no entries of it yet
            return reader.get_tag(feed_url, self._tag_key(reader), None) == self._mark(feed.last_updated)
        except Exception:
            log.warning("cannot read the monitor's tag of %s; its entries will be compared", feed_url, exc_info=True)
            return False

    def _mark_caught_up(self, reader: Reader, feed: Any) -> None:
        """Record that every entry of `feed` (as read after its update) was handed over."""
        if feed.last_updated is None:
            return
        try:
            mark = self._mark(feed.last_updated)
            key = self._tag_key(reader)
            if reader.get_tag(feed.url, key, None) != mark:
                reader.set_tag(feed.url, key, mark)
        except Exception:
            log.warning("cannot record that %s was handed over; it will be compared again", feed.url, exc_info=True)

    def _mark(self, last_updated: datetime) -> dict[str, Any]:   # a reader tag: JSON
        return {"database": self._database, "last_updated": last_updated.isoformat()}


def _entries_of(reader: Reader, feed_url: str, since: datetime | None) -> Iterator[FeedEntry]:
    for entry in reader.get_entries(feed=feed_url):
        if since is not None:
            when = entry.published or entry.updated or entry.added
            if when is not None and when < since:
                continue
        try:
            yield entry_of(entry)
        except Exception:
            log.warning("reader entry %r of %s cannot be handed over", entry.id, feed_url, exc_info=True)


def _batches(items: Iterable[FeedEntry], size: int) -> Iterator[list[FeedEntry]]:
    batch: list[FeedEntry] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _feed(reader: Reader, feed_url: str) -> Any:
    """reader's Feed, or None when it was deleted meanwhile (or cannot be read)."""
    try:
        return reader.get_feed(feed_url, None)
    except Exception:
        log.warning("cannot read reader's feed %s", feed_url, exc_info=True)
        return None


def _title(feed: Any) -> str | None:
    if feed is None:
        return None
    title: str | None = getattr(feed, "user_title", None) or feed.title    # Feed.resolved_title, before reader 3.16
    return title
