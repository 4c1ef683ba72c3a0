"""The command line: `monitor [--config FILE] COMMAND ...`.

Every command reads the configuration the same way, opens the store the same way and turns
every MonitorError into one clear line on stderr (never a traceback for a user mistake).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from contextlib import contextmanager
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from monitor import __version__
from monitor._types import JUDGMENT_LABELS
from monitor.config import Settings, describe_keys, find_config, load_settings, parse_duration, with_database
from monitor.exceptions import ConfigError, MonitorError

log = logging.getLogger("monitor")

EPILOG = """\
examples:
  monitor --config config.example.toml run --once      one pass over every feed, then exit
  monitor --config config.example.toml run             the daemon: every feed on its schedule
  monitor report --since 7d --format html --output digest.html
  monitor feeds add https://example.org/world/rss
  monitor demo                                          an offline tour, no setup needed

The configuration is --config FILE, else $MONITOR_CONFIG, else ./monitor.toml.
`monitor COMMAND --help` explains each command.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="monitor", formatter_class=_Formatter, epilog=EPILOG,
        description="Media monitoring: poll news feeds, extract every new article, flag the ones that "
                    "cover the stories you track, and write digests.")
    p.add_argument("--config", metavar="FILE", help="configuration file (TOML); see config.example.toml")
    p.add_argument("--database", metavar="URL",
                   help="use this database instead of [database] url, e.g. the one a reader plugin or "
                        "`monitor serve` writes to: sqlite:///path/monitor.db or postgresql://host/db")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help: str, description: str | None = None, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                              formatter_class=_Formatter)

    run = cmd("run", "fetch feeds, extract articles, match stories (the daemon, or one pass with --once)",
              epilog="The daemon checks each feed when it is due (schedule.interval, or the feed's own) "
                     "and stops cleanly on Ctrl-C or SIGTERM.\nA new database is created on first run; an "
                     "outdated one must be upgraded with `monitor db upgrade`.")
    run.add_argument("--once", action="store_true", help="one full pass over every enabled feed, then exit")

    rep = cmd("report", "the digest of stored matches",
              epilog="T is an ISO 8601 date or date-time (2018-05-01, 2018-05-24T14:00:00+00:00) or a time\n"
                     "ago: 24h, 7d, 90m. Matches are filed under their article's publication time (or first\n"
                     "seen, when the feed gave none); the window is [since, until).\n\n"
                     "examples:\n  monitor report --since 7d\n  monitor report --story trump-kim-summit-2018 "
                     "--format html --output digest.html")
    rep.add_argument("--since", metavar="T", type=_time_arg, help="start of the window (inclusive)")
    rep.add_argument("--until", metavar="T", type=_time_arg, help="end of the window (exclusive)")
    rep.add_argument("--story", metavar="ID", action="append", help="only this story (repeatable)")
    rep.add_argument("--format", default="text", choices=("text", "markdown", "html", "json", "csv"))
    rep.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    rep.add_argument("--near-misses", action="store_true",
                     help="add a \"why not\" section per story: the articles that scored close under its "
                          "threshold and were not matched, with score, logit, evidence and the model version "
                          "that decided (text, markdown, html, json: a `near_misses` list per story)")

    exp = cmd("export", "export stored data")
    exp_sub = exp.add_subparsers(dest="what", metavar="WHAT", required=True)
    ea = exp_sub.add_parser("articles", help="every stored article, one JSON object a line",
                            description="Every stored article as JSON lines: url, canonical_url, feed_url, "
                                        "title, body, published, lang, fetched_at, ...")
    ea.add_argument("--format", default="jsonl", choices=("jsonl",))

    feeds = cmd("feeds", "list, add, remove, import and export feeds")
    fs = feeds.add_subparsers(dest="action", metavar="ACTION", required=True)
    fs.add_parser("list", help="every feed with its health: last fetch, status, errors, next due")
    fa = fs.add_parser("add", help="add a feed")
    fa.add_argument("url")
    fa.add_argument("--title")
    fa.add_argument("--interval", type=_duration_arg, help="check interval, e.g. 30m (default: schedule.interval)")
    fr = fs.add_parser("remove", help="remove a feed (its articles stay)")
    fr.add_argument("url")
    for action, help in (("enable", "enable a feed (e.g. after it was disabled for failing)"),
                         ("disable", "stop checking a feed without removing it")):
        fs.add_parser(action, help=help).add_argument("url")
    fi = fs.add_parser("import", help="add every feed of an OPML file")
    fi.add_argument("file", type=Path)
    fe = fs.add_parser("export", help="every feed as OPML 2.0")
    fe.add_argument("--output", metavar="FILE")

    st = cmd("stories", "the stories being tracked")
    ss = st.add_subparsers(dest="action", metavar="ACTION", required=True)
    ss.add_parser("list", help="every story: id, title, window, enabled")
    sa = ss.add_parser("add", help="derive a story from a reference article and write it as a plugin",
                       formatter_class=_Formatter,
                       epilog="The reference is an http(s) URL (fetched under the [fetch] settings) or a file of\n"
                              "plain text (first line = title) or HTML. The story is written to DIR/ID.toml (default:\n"
                              "the first [plugins] paths folder, else plugins/ next to the config file); enable it\n"
                              "with a [[stories]] table holding id = \"ID\".\n\nexample:\n"
                              "  monitor stories add harbour-strike --reference https://example.org/strike.html \\\n"
                              "      --query '(docker* OR port) AND strike*' --start 2021-03-01 --end 2021-04-30")
    sa.add_argument("id", help="story ID (lower-case letters, digits, '-', '_', '.')")
    sa.add_argument("--reference", required=True, metavar="URL|FILE", help="the article that defines the story")
    sa.add_argument("--query", help="a query the articles must satisfy (docs/query-language.md)")
    sa.add_argument("--title", help="the story's title (default: the article's)")
    sa.add_argument("--start", type=_time_arg, metavar="D", help="start of the story window (default: 60 days "
                    "before the article's date, when known)")
    sa.add_argument("--end", type=_time_arg, metavar="D", help="end of the story window (default: 60 days after)")
    sa.add_argument("--output", type=Path, metavar="DIR", help="folder to write ID.toml into")
    sa.add_argument("--force", action="store_true", help="replace an existing ID.toml")
    sh = ss.add_parser("show", help="a story's full definition, as its current version decides")
    sh.add_argument("id")
    sh.add_argument("--versions", action="store_true", help="list the story's model versions instead, newest "
                    "first, with what changed in each (definition, learned names, judgments)")
    sr = ss.add_parser("rebuild", help="make the story's next model version from the names it learned and the "
                       "judgments made since", formatter_class=_Formatter,
                       epilog="Decisions name the version that made them; a version only changes on purpose: here,\n"
                              "on the daemon's schedule (schedule.rebuild_stories), or when the story is edited.\n"
                              "Stored matches keep their version: `stories backfill ID` re-scores them.")
    sr.add_argument("id")
    sr.add_argument("--dry-run", action="store_true", help="say whether a new version would be made, write nothing")
    stt = ss.add_parser("test", help="explain, rule by rule, a story's decision on one article")
    stt.add_argument("id")
    stt.add_argument("source", metavar="URL|FILE", help="the article: http(s) URL, or a text or HTML file")
    sb = ss.add_parser("backfill", help="make the story's next version and re-score stored articles with it",
                       formatter_class=_Formatter,
                       epilog="Articles are chosen by publication time (else first seen) in [since, until).\n"
                              "The story's next version (names learned and judgments made since) is recorded first.\n"
                              "Run with --dry-run first: it writes nothing and says what the new version would change.")
    sb.add_argument("id")
    sb.add_argument("--since", metavar="T", type=_time_arg, help="only articles from T (inclusive)")
    sb.add_argument("--until", metavar="T", type=_time_arg, help="only articles before T")
    sb.add_argument("--dry-run", action="store_true", help="count and show the changes, write nothing")

    jd = cmd("judge", "label an article on or off a story: the story learns from it in its next version",
             epilog="The label is stored with when and by whom. It takes effect with the story's next version:\n"
                    "the judged article then decides itself, and the story's profile moves toward the articles\n"
                    "judged on and away from those judged off. See what that version changes with\n"
                    "  monitor stories backfill ID --dry-run\nand apply it with\n  monitor stories backfill ID\n"
                    "A later judgment of the same article replaces the earlier one. An article not stored yet\n"
                    "may be judged: the judgment waits until a pass stores it.\n\nexamples:\n"
                    "  monitor judge --story harbour-strike https://example.org/news/dockers-vote on\n"
                    "  monitor judge --story harbour-strike https://example.org/sport/cup-final off "
                    "--note 'a football strike'")
    jd.add_argument("--story", required=True, metavar="ID", help="the story judged (see `monitor stories list`)")
    jd.add_argument("url", metavar="URL", help="the article's address: canonicalised as articles are stored "
                    "(tracking parameters, fragment dropped); its address after redirects works too")
    jd.add_argument("label", choices=JUDGMENT_LABELS, metavar="on|off|brief",
                    help="on: the article covers the story; off: it does not; brief: it mentions the story "
                         "in passing (not a match, and it does not move the profile)")
    jd.add_argument("--note", metavar="TEXT", help="why, for whoever reviews the story's decisions later")
    jd.add_argument("--author", metavar="NAME", help="who judges (default: the OS user, $USER)")

    rules = cmd("rules", "the rule plugins available")
    rules.add_subparsers(dest="action", metavar="ACTION", required=True).add_parser(
        "list", help="name, version and origin of every rule")

    ev = cmd("eval", "score a story on a labelled corpus (offline), or on its own judged articles",
             epilog="--corpus FILE.jsonl: one article a line with title, body, summary, published, lang and\n"
                    "label on/brief/off (see LABELS.md); prints precision, recall, F1, a threshold sweep and\n"
                    "the reliability of the scores.\n\n"
                    "--judgments: the stored articles analysts judged with `monitor judge`, scored with k-fold\n"
                    "cross-validation (5 folds, fewer with fewer articles): each fold is scored by the story's\n"
                    "profile moved by the other folds' judgments only, as a new version would move it; the\n"
                    "story as defined is scored on the same articles beside it. Needs 5 judged articles.\n\n"
                    "examples:\n  monitor eval --corpus dev.jsonl --story trump-kim-summit-2018\n"
                    "  monitor eval --judgments --story harbour-strike")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", type=Path, metavar="FILE.jsonl", help="a labelled corpus (JSON lines)")
    source.add_argument("--judgments", action="store_true",
                        help="the story's own judged articles, stored in the database, with cross-validation")
    ev.add_argument("--story", metavar="ID", help="story to score (default: the first enabled one)")

    db = cmd("db", "database schema")
    ds = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    ds.add_parser("upgrade", help="create or upgrade the schema to this version of monitor")
    ds.add_parser("status", help="whether the schema is current")

    cfg = cmd("config", "configuration keys and checks")
    cs = cfg.add_subparsers(dest="action", metavar="ACTION", required=True)
    cs.add_parser("keys", help="every configuration key with its default and meaning")
    cs.add_parser("check", help="load the configuration and the stories, report problems")

    demo = cmd("demo", "an offline tour: serve a small bundled news site, run one pass, print the digest")
    demo.add_argument("--format", default="text", choices=("text", "markdown", "html", "json", "csv"))
    demo.add_argument("--keep", metavar="DIR", type=Path, help="keep the demo database and site in DIR")

    srv = cmd("serve", "serve the Miniflux webhook and the read API over HTTP",
              epilog="Listens on [serve] host and port (default 127.0.0.1:8080): POST /webhooks/miniflux takes\n"
                     "Miniflux's signed new_entries events (secret: serve.miniflux_secret or\n"
                     "$MONITOR_MINIFLUX_SECRET), /api serves stories, matches and digests, /docs documents it.\n"
                     "Entries are processed in the background; stop with Ctrl-C or SIGTERM.")
    srv.add_argument("--host", help="address to listen on (default: serve.host)")
    srv.add_argument("--port", type=int, help="port to listen on (default: serve.port)")

    rs = cmd("reader-sync", "hand the entries of a reader (the feed-reader library) database to the monitor",
             epilog="Opens READER_DB with the monitor's reader plugin, updates reader's due feeds with --update,\n"
                    "hands over the entries the monitor has not seen (only feeds changed since the last\n"
                    "hand-over are compared) and processes them: pages, extraction, matching, storage.\n"
                    "Then `monitor report` shows the matches.\n\nexamples:\n"
                    "  monitor reader-sync ~/.local/share/reader/db.sqlite --update\n"
                    "  monitor reader-sync db.sqlite --since 2018-05-01     older entries are skipped for good")
    rs.add_argument("reader_db", metavar="READER_DB", help="reader's database file")
    rs.add_argument("--update", action="store_true", help="let reader update its due feeds first")
    rs.add_argument("--since", metavar="T", type=_time_arg,
                    help="hand over only entries published from T on (first catch-up of a large history)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        settings = load_settings(find_config(args.config))
        if args.database:
            settings = with_database(settings, args.database)
        _setup_logging(settings, args)
        return _COMMANDS[args.command](settings, args)
    except MonitorError as e:
        print(f"monitor: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        print("monitor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


# -- argument types -------------------------------------------------------------------------

def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 date or date-time (naive = UTC), or a relative `24h`/`7d`/`90m` meaning that long ago."""
    now = now or datetime.now(timezone.utc)
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?\s*(s|m|min|h|d)", t, re.I):
        return now - timedelta(seconds=parse_duration(t))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return datetime.combine(date.fromisoformat(t), dtime(0), tzinfo=timezone.utc)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2018-05-01, 2018-05-24T14:00:00+00:00, or 24h / 7d") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _time_arg(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- shared plumbing ------------------------------------------------------------------------

def _setup_logging(settings: Settings, args: argparse.Namespace) -> None:
    level = getattr(logging, settings.log.level.upper())
    if args.verbose:
        level = logging.DEBUG if args.verbose > 1 else min(level, logging.INFO)
    if args.quiet:
        level = logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "courlan", "apscheduler.executors",
                  "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@contextmanager
def _open_store(settings: Settings, *, create: bool = True) -> Iterator[Any]:
    from monitor.db.store import Store

    store = Store.open(settings.database_url, create=create)
    try:
        if settings.feeds:
            store.sync_feeds([(f.url, f.title, int(f.interval) if f.interval else None) for f in settings.feeds])
        yield store
    finally:
        store.close()


def _stories(settings: Settings) -> list[Any]:
    from monitor.matching import load_stories

    return load_stories(settings.stories, plugin_dirs=settings.plugin_dirs, base_dir=settings.base_dir)


def _story(settings: Settings, story_id: str) -> Any:
    """The story `story_id` as configured, or a plugin story not enabled in the config yet (e.g.
    just added); ConfigError (exit 2) naming the known ones when there is none."""
    stories = _stories(settings)
    story = next((s for s in stories if s.id == story_id), None)
    if story is None:
        from monitor.matching import load_stories
        from monitor.matching.loader import discover

        if story_id not in discover(settings.plugin_dirs).stories:
            raise ConfigError(f"no story {story_id!r}; configured: {', '.join(s.id for s in stories) or 'none'}")
        [story] = load_stories([{"id": story_id}], plugin_dirs=settings.plugin_dirs, base_dir=settings.base_dir)
    return story


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        log.info("wrote %s", output)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


# -- commands -------------------------------------------------------------------------------

def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import run_daemon, run_once

    stories = _stories(settings)
    with _open_store(settings) as store:
        if args.once:
            summary = run_once(settings, store, stories)
            print(summary.line(), file=sys.stderr)
            return 0
        return run_daemon(settings, store, stories)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.report import StoryInfo, build_digest, render

    stories = [s for s in _stories(settings) if s.enabled]
    if args.story:
        known = {s.id for s in stories}
        unknown = [s for s in args.story if s not in known]
        if unknown:
            raise ConfigError(f"no enabled story {', '.join(map(repr, unknown))}; enabled: {', '.join(sorted(known)) or 'none'}")
        stories = [s for s in stories if s.id in args.story]
    if args.since and args.until and args.since >= args.until:
        raise ConfigError("--since must be earlier than --until")
    if args.near_misses and args.format == "csv":
        raise ConfigError("--near-misses goes with --format text, markdown, html or json (CSV lists matches only)")
    near = None
    with _open_store(settings) as store:
        matches = store.matches([s.id for s in stories], args.since, args.until)
        if args.near_misses:
            from monitor.db.browse import near_misses

            near, _ = near_misses(store, [s.id for s in stories], since=args.since, until=args.until)
    digest = build_digest([StoryInfo.of(s) for s in stories], matches, since=args.since, until=args.until,
                          generated_at=datetime.now(timezone.utc), near_misses=near)
    color = args.format == "text" and not args.output and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    _write(render(digest, args.format, color=color), args.output)
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    with _open_store(settings) as store:
        out = sys.stdout
        for a in store.iter_articles():
            out.write(json.dumps({
                "url": a.final_url or a.url, "canonical_url": a.url, "feed_url": a.feed_url, "title": a.title,
                "author": a.author, "outlet": a.outlet, "body": a.body, "summary": a.summary,
                "published": _iso(a.published), "lang": a.lang, "fetched_at": _iso(a.fetched_at), "source": a.source,
            }, ensure_ascii=False) + "\n")
    return 0


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.opml import read_opml, write_opml

    with _open_store(settings) as store:
        if args.action == "list":
            from monitor.db.polling import load_poll_states

            feeds = store.list_feeds()
            polls = load_poll_states(store, [f.id for f in feeds])
            if not feeds:
                print("no feeds yet: add one with `monitor feeds add URL` or under [[feeds]] in the config")
            for f in feeds:
                state = "enabled" if f.enabled else "DISABLED"
                print(f"{f.url}\n    {f.title or '(no title yet)'} - {state}, source {f.source}\n"
                      f"    last fetch {_ago(f.last_fetched_at)}: {f.last_status or 'never fetched'}"
                      f"{f', {f.error_count} errors in a row' if f.error_count else ''}"
                      f"{f' - {f.last_error}' if f.last_error else ''}\n"
                      f"    next due {_ago(f.next_due_at) if f.next_due_at else 'now'}; "
                      f"{_polling(settings, f, polls.get(f.id))}")
        elif args.action == "add":
            _check_url(args.url)
            feed = store.add_feed(args.url, title=args.title, interval_seconds=int(args.interval) if args.interval else None)
            print(f"added {feed.url}" if feed.source == "cli" else f"{feed.url} is already configured")
        elif args.action == "remove":
            print(f"removed {args.url}" if store.remove_feed(args.url) else f"no feed {args.url}")
            return 0
        elif args.action in ("enable", "disable"):
            if not store.set_feed_enabled(args.url, args.action == "enable"):
                raise ConfigError(f"no feed {args.url} (see `monitor feeds list`)")
            print(f"{args.action}d {args.url}")
        elif args.action == "import":
            try:
                data = args.file.read_bytes()
            except OSError as e:
                raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
            feeds = read_opml(data, source=str(args.file))
            added = store.sync_feeds([(u, t, None) for u, t in feeds if re.match(r"^https?://", u)], source="opml")
            print(f"{added} feeds added, {len(feeds) - added} already known or not http(s)")
        elif args.action == "export":
            data = write_opml([(f.url, f.title) for f in store.list_feeds()], title="monitor feeds")
            if args.output:
                Path(args.output).write_bytes(data)
            else:
                sys.stdout.write(data.decode("utf-8"))
    return 0


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


def _check_url(url: str) -> None:
    if not re.match(r"^https?://[^/\s]+", url, re.I):
        raise ConfigError(f"{url!r} is not an http(s) URL")


def _ago(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    delta = datetime.now(timezone.utc) - dt
    secs = int(abs(delta.total_seconds()))
    text = f"{secs // 86400}d" if secs >= 86400 else f"{secs // 3600}h" if secs >= 3600 else f"{secs // 60}m" if secs >= 60 else f"{secs}s"
    return f"{dt:%Y-%m-%d %H:%M} UTC ({text} {'ago' if delta.total_seconds() >= 0 else 'from now'})"


def cmd_stories(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.db.story_models import current_if_stored
    from monitor.matching import authoring

    if args.action == "add":
        return _story_add(settings, args)
    if args.action == "list":
        stories = _stories(settings)
        if not stories:
            print("no stories configured: add [[stories]] tables to the config (see config.example.toml)")
        for s in stories:
            print(f"{s.id}{'' if s.enabled else ' (disabled)'}\n    {s.title}\n    window {_window(s)}")
        return 0
    story = _story(settings, args.id)
    if args.action == "show":
        if getattr(args, "versions", False):
            return _story_versions(settings, story)
        print(authoring.describe(current_if_stored(settings.database_url, story)))
        return 0
    if args.action == "rebuild":
        from monitor.db.story_models import rebuild

        with _open_store(settings) as store:
            rebuilt, changed = rebuild(store, story, reason="stories rebuild", dry_run=args.dry_run)
        if not changed:
            print(f"story {story.id}: version {rebuilt.version} is current; nothing new was learned or judged")
        else:
            print(f"story {story.id}: {'would make' if args.dry_run else 'made'} version {rebuilt.version} "
                  f"({len(rebuilt.learned)} learned names, {len(rebuilt.judged)} judgments)"
                  f"{'; nothing written (dry run)' if args.dry_run else ''}")
        return 0
    if args.action == "test":
        from dataclasses import replace

        from monitor.matching import Matcher

        story = replace(current_if_stored(settings.database_url, story), enabled=True)
        read = authoring.read_article(args.source, settings.fetch)
        result, rules, candidate = Matcher([story]).explain(read.article, story.id)
        print(f"article: {read.article.title or '(no title)'}\n  {read.source}, published "
              f"{read.article.published.date().isoformat() if read.article.published else 'unknown'}, "
              f"{len(read.article.body.split())} words")
        print(authoring.explain(story, result, rules, candidate))
        return 0
    from monitor.backfill import backfill
    from monitor.db.story_models import rebuild

    with _open_store(settings) as store:
        # The story's next version (learned names and judgments read again), recorded only when applied.
        story, changed = rebuild(store, story, reason="stories backfill", dry_run=args.dry_run)
        if changed:
            print(f"story {story.id}: {'the next version would be' if args.dry_run else 'new version'} {story.version} "
                  f"({len(story.learned)} learned names, {len(story.judged)} judgments)")
        summary = backfill(store, story, since=args.since, until=args.until, dry_run=args.dry_run,
                           progress=log.info)
    verb = ("would add", "would remove", "would refresh") if args.dry_run else ("added", "removed", "refreshed")
    print(f"story {story.id}: {summary.scanned} stored articles scored; {verb[0]} {summary.added} matches, "
          f"{verb[1]} {summary.removed}, {verb[2]} {summary.updated} that still hold")
    for heading, samples in ((verb[0], summary.added_samples), (verb[1], summary.removed_samples)):
        for c in samples:
            old = f"{c.old_score:.3f}" if c.old_score is not None else "none"
            print(f"  {heading}: {c.title or '(no title)'}\n      {c.url}  score {old} -> {c.new_score:.3f}")
    if args.dry_run:
        print("dry run: nothing was written; run again without --dry-run to apply")
    return 0


def cmd_judge(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from monitor.db.story_models import current_stories, judge, rebuild

    story = _story(settings, args.story)
    try:
        author = args.author if args.author is not None else (os.environ.get("USER") or getpass.getuser())
    except (OSError, KeyError):
        raise ConfigError("who is judging? $USER is not set: give --author NAME") from None
    with _open_store(settings) as store:
        try:
            judged = judge(store, story.id, args.url, args.label, author=author, note=args.note)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        [current] = current_stories(store, [story])
        upcoming, changed = rebuild(store, story, dry_run=True)
    print(f"judged {args.label} story {story.id} by {judged.author}: {judged.url}")
    if judged.stored:
        print(f"  article: {judged.title or '(no title)'}")
    else:
        print("  no article is stored at this address yet: the judgment waits for it (from the story's next\n"
              "  version on, it decides the article when a pass stores it)")
    if not changed:
        print(f"story {story.id}: version {current.version} already follows this judgment; nothing to apply")
        return 0
    print(f"the story's next version ({upcoming.version}, now {current.version}) would:")
    for line in _version_changes(current, upcoming):
        print(f"  {line}")
    print(f"see which stored matches it changes:  monitor stories backfill {story.id} --dry-run\n"
          f"then apply it:                       monitor stories backfill {story.id}")
    return 0


def _version_changes(current: Any, upcoming: Any) -> list[str]:
    """What `upcoming` (a story as its next version decides) changes from `current`, in words."""
    lines = []
    for url in sorted(set(current.judged) | set(upcoming.judged)):
        before, after = current.judged.get(url), upcoming.judged.get(url)
        if before != after:
            lines.append(f"follow the judgment {url} is {after or 'unjudged'}" + (f" (was {before})" if before else ""))
    on = sum(label == "on" for label in upcoming.judged.values())
    off = sum(label == "off" for label in upcoming.judged.values())
    if upcoming.terms != current.terms:
        lines.append(f"move the profile toward the stored articles judged on ({on} judged) and away from "
                     f"those judged off ({off} judged)" if upcoming.terms else "restore the reference profile")
    elif not upcoming.terms:
        lines.append("leave the profile as it is (the story has no reference terms); judged articles decide themselves")
    gained = [n for n in upcoming.learned if n not in current.learned]
    lost = [n for n in current.learned if n not in upcoming.learned]
    if gained or lost:
        lines.append("learn names " + ", ".join([*(f"+{n}" for n in gained), *(f"-{n}" for n in lost)]))
    return lines


def _story_add(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.matching import authoring
    from monitor.matching.loader import discover, project_plugin_dir

    story_id = authoring.check_story_id(args.id)
    if args.start and args.end and args.start >= args.end:
        raise ConfigError("--start must be earlier than --end")
    folder = (args.output or (settings.plugin_dirs[0] if settings.plugin_dirs else settings.base_dir / "plugins"))
    folder = folder.resolve()
    target = folder / f"{story_id}.toml"
    # The folder the story goes to may not exist yet: look for clashes in those that do.
    existing = discover([d for d in settings.plugin_dirs if d.is_dir()]).stories.get(story_id)
    if existing is not None and not (args.force and existing.origin.endswith(f"{folder.name}/{target.name}")):
        raise ConfigError(f"story {story_id!r} already exists ({existing.origin}); choose another ID"
                          f"{' or use --force' if existing.origin.endswith(target.name) else ''}")
    read = authoring.read_article(args.reference, settings.fetch)
    table, profile = authoring.new_story(story_id, read, title=args.title, query=args.query,
                                         start=args.start, end=args.end)
    path = authoring.write_story(table, folder, force=args.force, source=read.source)
    print(f"wrote {path}\n  title   {table['title']}\n  window  {table.get('start', 'any time')} to "
          f"{table.get('end', 'open')}")
    for entry in table.get("names", []):
        also = f" (also {', '.join(entry['aliases'])})" if entry.get("aliases") else ""
        print(f"  name    {entry['name']}{also}")
    print(f"  terms   {', '.join(list(profile.terms)[:12])} ({len(profile.terms)} in all)")
    print(f"  anchors {', '.join(table['anchors'])} ({table['anchors_needed']} needed)")
    if args.query:
        print(f"  query   {args.query} (required)")
    searched = {p.resolve() for p in settings.plugin_dirs} | ({project_plugin_dir().resolve()} if project_plugin_dir() else set())
    if folder not in searched:
        print(f"\n{folder} is not a plugin folder yet: add it to the config,\n  [plugins]\n  paths = [\"{folder}\"]")
    print(f"\nto track it, add to the config:\n  [[stories]]\n  id = \"{story_id}\"\n"
          f"then `monitor stories show {story_id}`, `monitor stories test {story_id} URL|FILE`, and "
          f"`monitor stories backfill {story_id} --dry-run` for the articles already stored")
    return 0


def _window(story: Any) -> str:
    start, end = getattr(story, "start", None), getattr(story, "end", None)
    if start is None and end is None:
        return "open-ended"
    return f"{f'{start:%Y-%m-%d}' if start else 'any time'} to {f'{end:%Y-%m-%d}' if end else 'now'}"


def cmd_rules(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.matching import list_rules

    for r in list_rules(plugin_dirs=settings.plugin_dirs):
        print(f"{r.name:24} {r.version:8} {r.origin}")
    return 0


def _story_versions(settings: Settings, story: Any) -> int:
    from monitor.db.story_models import versions

    with _open_store(settings) as store:
        found = versions(store, story.id)
    if not found:
        print(f"story {story.id}: no version recorded yet (the first pass or command that matches records one)")
        return 0
    print(f"story {story.id}: {len(found)} versions, newest first")
    for older, v in zip([*found[1:], None], found):
        changes = [v.reason]
        if older is not None:
            if v.definition != older.definition:
                changes.append("definition edited")
            gained = [n for n in v.learned if n not in older.learned]
            lost = [n for n in older.learned if n not in v.learned]
            if gained or lost:
                changes.append("learned " + ", ".join([*(f"+{n}" for n in gained), *(f"-{n}" for n in lost)]))
            judged = len(set(v.judgments.items()) - set(older.judgments.items()))
            if judged:
                changes.append(f"{judged} new judgments")
        print(f"  {v.version}  {v.created_at:%Y-%m-%d %H:%M} UTC  {'; '.join(changes)}")
    return 0


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.matching import evaluate_corpus

    stories = [s for s in _stories(settings) if s.enabled]
    if not stories:
        raise ConfigError("no enabled story to evaluate")
    story_id = args.story or stories[0].id
    if args.judgments:
        return _eval_judgments(settings, _story(settings, story_id))
    if not args.corpus.exists():
        raise ConfigError(f"corpus file not found: {args.corpus}")
    report = evaluate_corpus(args.corpus, stories, story_id)
    print(report.format())
    return 0


def _eval_judgments(settings: Settings, story: Any) -> int:
    from dataclasses import replace

    from monitor.db.story_models import current_stories, judged_articles
    from monitor.matching.crossval import TooFewJudgments, cross_validate

    with _open_store(settings) as store:
        # The current version's learned names, the profile as defined: the folds move it themselves.
        [current] = current_stories(store, [story], record=False)
        judged = judged_articles(store, story.id)
    try:
        report = cross_validate(replace(current, terms=story.terms), judged)
    except TooFewJudgments as e:
        raise MonitorError(str(e)) from None
    print(report.format())
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.db.engine import make_engine
    from monitor.db.migrate import schema_status, upgrade

    engine = make_engine(settings.database_url)
    try:
        if args.action == "upgrade":
            before = schema_status(engine)
            upgrade(engine)
            print(f"database schema was {before}, now current")
        else:
            status = schema_status(engine)
            print(f"database schema: {status}")
            return 0 if status == "current" else 1
    finally:
        engine.dispose()
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "keys":
        for key, default, help in describe_keys():
            print(f"{key}  (default {default})\n    {help}" if default else f"{key}\n    {help}")
        return 0
    stories = _stories(settings)
    print(f"configuration {settings.path or '(defaults, no file)'} is valid: {len(settings.feeds)} feeds, "
          f"{sum(s.enabled for s in stories)} enabled stories, database {settings.database_url}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import run_demo

    return run_demo(args.format, keep=args.keep)


def cmd_reader_sync(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.integrations.reader import sync_database

    result = sync_database(settings, args.reader_db, update=args.update, since=args.since)
    print("\n".join(result.lines()))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.server import serve

    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"--port must lie in 1-65535, got {args.port}")
    return serve(settings, host=args.host, port=args.port)


_COMMANDS = {
    "run": cmd_run, "report": cmd_report, "export": cmd_export, "feeds": cmd_feeds, "stories": cmd_stories,
    "judge": cmd_judge, "rules": cmd_rules, "eval": cmd_eval, "db": cmd_db, "config": cmd_config, "demo": cmd_demo, "serve": cmd_serve,
    "reader-sync": cmd_reader_sync,
}
