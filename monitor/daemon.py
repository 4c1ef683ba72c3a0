"""Running the pipeline: one pass, the daemon, and the offline demo.

The scheduler only ticks: which feed is due lives in the database (feeds.next_due_at), so a
restart, or another daemon on the same PostgreSQL, sees the same schedule.
"""
from __future__ import annotations

import logging
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config import Settings
from monitor.db.leases import Claim
from monitor.db.store import Store
from monitor.exceptions import MonitorError
from monitor.matching import Story
from monitor.pipeline import PassSummary
from monitor.runtime import Runtime
from monitor.wording import plural

if TYPE_CHECKING:
    from monitor.db.retention import Pruner
    from monitor.report import Format

log = logging.getLogger("monitor.daemon")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop`; a second SIGINT gives up at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s received: finishing in-flight work and stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_once(runtime: Runtime) -> PassSummary:
    """One pass over every enabled feed, whatever its schedule; then the alerts and digests due.

    On PostgreSQL, which daemons may share, the pass leases its feeds like a daemon (every
    enabled feed, due or not) and leaves those another holder has leased to that holder.
    """
    settings, store, stories = runtime.settings, runtime.store, runtime.stories
    if settings.alerts or settings.digests:    # else nothing to check or register (nor to import)
        runtime.prepare_delivery()
    feeds = [f for f in store.list_feeds() if f.enabled]
    if not feeds:
        log.warning("no enabled feeds: add some under [[feeds]] in the config or with `monitor feeds add URL`")
    claims: Sequence[Claim] = ()
    held_elsewhere = 0
    if store.dialect_name == "postgresql" and feeds:
        from monitor.db.leases import claim_due_feeds, new_owner

        claims = claim_due_feeds(store, new_owner(), datetime.now(UTC), len(feeds),
                                 float(settings.schedule.lease), due_only=False)
        held_elsewhere = max(0, len(feeds) - len(claims))
        feeds = [c.feed for c in claims]
        if held_elsewhere:
            log.info("%s leased to other daemons right now; this pass leaves them to those",
                     plural(held_elsewhere, "feed is", "feeds are"))
    log.info("one pass over %s, %s", plural(len(feeds), "feed"), plural(sum(1 for s in stories if s.enabled), "story"))
    stop = threading.Event()
    with stop_on_signals(stop), runtime.pipeline(progress=log.info) as pipeline:
        summary = pipeline.run_pass(feeds, stop=stop, claims=claims)
    summary.feeds_leased_elsewhere = held_elsewhere
    if not summary.stopped:
        runtime.deliver()
    return summary


def rebuild_due_stories(settings: Settings, store: Store, stories: Sequence[Story], owner: str, now: datetime) -> None:
    """Once per `schedule.rebuild_stories` across every daemon: new story versions from the names
    learned and the judgments made since. A failure is logged; the daemon goes on."""
    period = float(settings.schedule.rebuild_stories)
    if period <= 0:
        return
    from monitor.db.leases import run_once_per
    from monitor.db.story_models import rebuild

    if not run_once_per(store, "rebuild-stories", str(int(now.timestamp() // period)), owner, now=now):
        return
    for story in stories:
        if not story.enabled:
            continue
        try:
            rebuilt, changed = rebuild(store, story, reason="scheduled", at=now)
        except Exception:
            log.exception("rebuilding story %r failed", story.id)
            continue
        if changed:
            log.info("story %s: new version %s (%d learned names, %d judgments)", story.id, rebuilt.version,
                     len(rebuilt.learned), len(rebuilt.judged))


def _summed(total: PassSummary, more: PassSummary) -> PassSummary:
    """The batches of one tick as one pass."""
    total.add(more)
    total.stopped = more.stopped
    return total


# Retention batches a daemon runs per tick at most: a tick prunes batch_size x this many
# articles, so a first prune of a large database spreads over ticks instead of delaying a pass.
_PRUNE_BATCHES_PER_TICK = 20


def prune_some(store: Store, pruner: Pruner, stop: threading.Event) -> None:
    """A few batches of the retention policy, by one daemon at a time; failures are logged."""
    from monitor.db.leases import advisory_lock

    try:
        with advisory_lock(store, "retention") as mine:
            if not mine:
                return      # another daemon is pruning
            counts = pruner.run(datetime.now(UTC), max_batches=_PRUNE_BATCHES_PER_TICK, stop=stop.is_set)
        if counts:
            log.info("%s", counts.line())
    except MonitorError as e:
        log.error("retention: %s", e)
    except Exception:
        log.exception("retention failed unexpectedly")


def run_daemon(runtime: Runtime) -> int:
    """Check due feeds every `schedule.tick` until SIGINT/SIGTERM; then stop cleanly."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.db.leases import claim_due_feeds, new_owner, register_daemon

    settings, store, stories = runtime.settings, runtime.store, runtime.stories
    runtime.prepare_delivery()
    stop = threading.Event()
    # SQLite serves one daemon (register_daemon refuses a second); PostgreSQL any number, which
    # claim due feeds with leases so that no feed is checked by two daemons at once.
    shared = store.dialect_name == "postgresql"
    # A daemon claims as many feeds as it fetches at once, and claims again when they are done,
    # so that the feeds spread over the daemons instead of all going to the first one to tick.
    owner, batch = new_owner(), max(1, settings.fetch.concurrency)
    pruner = None
    if settings.retention.active:
        from monitor.db.retention import Pruner

        pruner = Pruner(store, settings.retention)
    # A pass longer than the tick is normal; APScheduler would warn about it on every tick.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    with register_daemon(store), stop_on_signals(stop), \
            runtime.pipeline(progress=log.info) as pipeline:

        def tick() -> None:
            if stop.is_set():
                return
            now = datetime.now(UTC)
            rebuild_due_stories(settings, store, stories, owner, now)
            # New story versions (rebuilt, judged, edited) count from the next pass on, in every daemon.
            pipeline.matcher = runtime.matcher()
            if shared:
                # Several daemons may share this database: work only on the feeds leased to us, a
                # batch at a time until none is due (one batch a tick checked 16 feeds in 30 s).
                summary = None
                while not stop.is_set():
                    claims = claim_due_feeds(store, owner, datetime.now(UTC), batch,
                                             float(settings.schedule.lease))
                    if not claims:
                        break
                    done = pipeline.run_pass([c.feed for c in claims], stop=stop, claims=claims)
                    summary = done if summary is None else _summed(summary, done)
                    if len(claims) < batch:
                        break
            else:
                due = store.due_feeds(now)
                summary = pipeline.run_pass(due, stop=stop) if due else None
            if summary is not None:
                log.info("%s", summary.line())
            if not stop.is_set():
                runtime.deliver()
            if pruner is not None and not stop.is_set():
                prune_some(store, pruner, stop)

        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(tick, "interval", seconds=float(settings.schedule.tick), id="tick",
                          next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                          misfire_grace_time=None)
        scheduler.start()
        log.info("daemon started: %s, %s, checking every %gs for due feeds (Ctrl-C stops)",
                 plural(store.count_feeds(), "feed"), plural(sum(1 for s in stories if s.enabled), "story"),
                 float(settings.schedule.tick))
        try:
            while not stop.wait(1.0):
                pass
        finally:
            scheduler.shutdown(wait=True)
    log.info("daemon stopped cleanly")
    return 0


def run_demo(fmt: Format, *, keep: Path | None = None) -> int:
    """Serve the bundled news site on 127.0.0.1, run one pass into a fresh database, print the digest."""
    work = keep or Path(tempfile.mkdtemp(prefix="monitor-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _demo(work, fmt, keep=keep is not None)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _demo(work: Path, fmt: Format, *, keep: bool) -> int:
    from monitor.config import settings_from_dict
    from monitor.demo import kept
    from monitor.demo.site import build_and_serve
    from monitor.matching import load_stories
    from monitor.report import StoryInfo, build_digest, render

    site, feed_urls = build_and_serve(work)
    try:
        settings = settings_from_dict({
            "database": {"url": f"sqlite:///{work / kept.DATABASE_NAME}"},
            "fetch": {"allow_private_addresses": True},
            "feeds": [{"url": u} for u in feed_urls],
            "stories": [{"id": kept.STORY}],
        })
        stories = load_stories(settings.stories)
        print(f"demo: serving {plural(len(feed_urls), 'feed')} of a small news site at {site.base_url}", file=sys.stderr)
        with Runtime.open(settings, stories=stories) as runtime:
            summary = run_once(runtime)
            print(f"demo: {summary.line()}", file=sys.stderr)
            matches = runtime.store.matches([s.id for s in stories], None, None)
        config = kept.write_config(work, feed_urls, site.base_url) if keep else None
    finally:
        site.close()
    digest = build_digest([StoryInfo.of(s) for s in stories], matches, since=None, until=None,
                          generated_at=datetime.now(UTC))
    sys.stdout.write(render(digest, fmt))
    print(kept.next_steps(config) if config else "demo: done (its temporary folder is removed); "
          "`monitor demo --keep DIR` keeps its database with a configuration to go on with", file=sys.stderr)
    return 0
