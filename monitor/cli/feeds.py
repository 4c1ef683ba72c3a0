"""`monitor feeds`: list (with each feed's health and polling), add, remove, enable, disable,
import (OPML) and export (OPML)."""
from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.cli.common import check_url, open_store, write_output
from monitor.config import Settings
from monitor.exceptions import ConfigError
from monitor.progress import StatusLine
from monitor.wording import plural


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.opml import read_opml, write_opml

    with open_store(settings) as store:
        if args.action == "list":
            feeds = store.list_feeds()
            polls = store.load_poll_states([f.id for f in feeds])
            print(render_feed_list(settings, feeds, polls), end="")
        elif args.action == "add":
            check_url(args.url)
            feed = store.add_feed(args.url, title=args.title, interval_seconds=int(args.interval) if args.interval else None)
            write_output(render_feed_change("add", feed.url, done=feed.source == "cli"), None)
        elif args.action == "remove":
            write_output(render_feed_change("remove", args.url, done=store.remove_feed(args.url)), None)
            return 0
        elif args.action in ("enable", "disable"):
            if not store.set_feed_enabled(args.url, args.action == "enable"):
                raise ConfigError(f"no feed {args.url} (see `monitor feeds list`)")
            write_output(render_feed_change(args.action, args.url, done=True), None)
        elif args.action == "import":
            try:
                data = args.file.read_bytes()
            except OSError as e:
                raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
            with StatusLine() as status:
                status(f"reading {args.file}")
                feeds = read_opml(data, source=str(args.file))
                status(f"adding {plural(len(feeds), 'feed')}")
                added = store.sync_feeds([(u, t, None) for u, t in feeds if re.match(r"^https?://", u)], source="opml")
            print(f"{plural(added, 'feed')} added, {len(feeds) - added} already known or not http(s)")
        elif args.action == "export":
            data = write_opml([(f.url, f.title) for f in store.list_feeds()], title="monitor feeds")
            if args.output:
                Path(args.output).write_bytes(data)
            else:
                sys.stdout.write(data.decode("utf-8"))
    return 0


# -- rendering ------------------------------------------------------------------------------

def render_feed_change(action: str, url: str, *, done: bool) -> str:
    """The line `feeds add/remove/enable/disable` answers with; `done` is false when there was
    nothing to do (the feed was configured already, or there was no such feed to remove)."""
    if action == "add":
        return f"added {url}" if done else f"{url} is already configured"
    if action == "remove":
        return f"removed {url}" if done else f"no feed {url}"
    return f"{action}d {url}"


def render_feed_list(settings: Settings, feeds: list[Any], polls: dict[Any, Any]) -> str:
    """`feeds list`: each feed with its title, state, last fetch, errors, next check and polling."""
    if not feeds:
        return "no feeds yet: add one with `monitor feeds add URL` or under [[feeds]] in the config\n"
    lines = []
    for f in feeds:
        state = "enabled" if f.enabled else "DISABLED"
        errors = f", {plural(f.error_count, 'error')} in a row" if f.error_count else ""
        lines.append(f"{f.url}\n    {f.title or '(no title yet)'} - {state}, source {f.source}\n"
                     f"    last fetch {_ago(f.last_fetched_at)}: {f.last_status or 'never fetched'}"
                     f"{errors}"
                     f"{f' - {f.last_error}' if f.last_error else ''}\n"
                     f"    next due {_ago(f.next_due_at) if f.next_due_at else 'now'}; "
                     f"{_polling(settings, f, polls.get(f.id))}\n")
    return "".join(lines)


def _polling(settings: Settings, feed: Any, poll: Any) -> str:
    """How often the feed is checked, and why: its own interval, the default, or the adapted one."""
    if feed.interval_seconds is not None:
        return f"checked every {_span(feed.interval_seconds)} (its own interval)"
    default = float(settings.schedule.interval)
    if poll is None or poll.interval is None:
        return f"checked every {_span(default)} (default)"
    stale = "; next request without validators (304 for a long time)" if poll.revalidate else ""
    if poll.activity is None:
        return f"checked every {_span(poll.interval)} (adaptive, pace not measured yet){stale}"
    pace = "busy" if poll.interval < default else "quiet" if poll.interval > default else "steady"
    return (f"checked every {_span(poll.interval)} (adaptive from {_span(default)}: {pace}, "
            f"{poll.activity:.1f} new entries per check){stale}")


def _span(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{f'{s % 3600 // 60:02d}m' if s % 3600 >= 60 else ''}"
    return f"{s // 60}m{f'{s % 60:02d}s' if s % 60 else ''}" if s >= 60 else f"{s}s"


def _ago(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    delta = datetime.now(UTC) - dt
    secs = int(abs(delta.total_seconds()))
    if secs >= 86400:
        text = f"{secs // 86400}d"
    elif secs >= 3600:
        text = f"{secs // 3600}h"
    else:
        text = f"{secs // 60}m" if secs >= 60 else f"{secs}s"
    return f"{dt:%Y-%m-%d %H:%M} UTC ({text} {'ago' if delta.total_seconds() >= 0 else 'from now'})"
