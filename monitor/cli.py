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
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor._types import JUDGMENT_LABELS
from monitor.config import (
    DEFAULT_CONFIG_NAME,
    Settings,
    check_database,
    configured_stories,
    describe_keys,
    find_config,
    load_settings,
    parse_duration,
    with_database,
)
from monitor.exceptions import ConfigError, MonitorError
from monitor.progress import StatusLine
from monitor.wording import plural

log = logging.getLogger("monitor")

# `run --once --fail-on-errors` when a feed failed: apart from 1 (the pass could not run) and 2 (bad config).
FEED_ERRORS_EXIT = 3

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


def _sub(group: Any, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
    """A subcommand whose `--help` starts with what its line in the parent's list says."""
    kw.setdefault("description", help)
    kw.setdefault("formatter_class", _Formatter)
    return group.add_parser(name, help=help, **kw)


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
    run.add_argument("--once", action="store_true",
                     help="one full pass over every enabled feed, then exit (on PostgreSQL it leases the feeds "
                          "like a daemon and leaves those a running daemon holds to it)")
    run.add_argument("--fail-on-errors", action="store_true",
                     help=f"with --once: exit with status {FEED_ERRORS_EXIT} when any feed could not be fetched or "
                          "parsed (without it a pass that ran exits 0, whatever failed), so that cron or a script "
                          "notices")

    rep = cmd("report", "the digest of stored matches",
              epilog="T is an ISO 8601 date or date-time (2018-05-01, 2018-05-24T14:00:00+00:00) or a time\n"
                     "ago: 24h, 7d, 90m. Matches are filed under their article's publication time (or first\n"
                     "seen, when the feed gave none); the window is [since, until).\n\n"
                     "examples:\n  monitor report --since 7d\n  monitor report --story trump-kim-summit-2018 "
                     "--format html --output digest.html")
    rep.add_argument("--since", metavar="T", type=_time_arg, help="start of the window (inclusive)")
    rep.add_argument("--until", metavar="T", type=_time_arg, help="end of the window (exclusive)")
    rep.add_argument("--story", metavar="ID", action="append", help="only this story (repeatable)")
    rep.add_argument("--format", default="text", choices=("text", "markdown", "html", "json", "csv"),
                     help="digest format: text (default, for a terminal), markdown, html (one self-contained page), json "
                          "(docs: README, `report --format json`) or csv (one match a row)")
    rep.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    rep.add_argument("--near-misses", action="store_true",
                     help="add a \"why not\" section per story: the articles that scored close under its "
                          "threshold and were not matched, with score, logit, evidence and the model version "
                          "that decided (text, markdown, html, json: a `near_misses` list per story)")

    exp = cmd("export", "export stored data")
    exp_sub = exp.add_subparsers(dest="what", metavar="WHAT", required=True)
    ea = _sub(exp_sub, "articles", help="every stored article, one JSON object a line",
              description="Every stored article as JSON lines: url, canonical_url, feed_url, "
                          "title, body, published, lang, fetched_at, ...")
    ea.add_argument("--format", default="jsonl", choices=("jsonl",), help="jsonl: one JSON object a line (the only format)")

    feeds = cmd("feeds", "list, add, remove, import and export feeds")
    fs = feeds.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(fs, "list", help="every feed with its health: last fetch, status, errors, next due")
    fa = _sub(fs, "add", help="add a feed",
              description="Add a feed to the database, beside the [[feeds]] of the configuration; the next pass\n"
                          "or the running daemon checks it. `monitor feeds remove URL` takes it out again.")
    fa.add_argument("url", help="the feed's address (RSS or Atom, http or https)")
    fa.add_argument("--title", help="a name for the feed (default: the feed's own title)")
    fa.add_argument("--interval", type=_duration_arg, help="check interval, e.g. 30m (default: schedule.interval)")
    fr = _sub(fs, "remove", help="remove a feed (its articles stay)")
    fr.add_argument("url", help="the feed's address, as `monitor feeds list` shows it")
    for action, help in (("enable", "enable a feed (e.g. after it was disabled for failing)"),
                         ("disable", "stop checking a feed without removing it")):
        _sub(fs, action, help=help).add_argument("url", help="the feed's address, as `monitor feeds list` shows it")
    fi = _sub(fs, "import", help="add every feed of an OPML file")
    fi.add_argument("file", type=Path, help="an OPML file, as feed readers export their subscriptions")
    fe = _sub(fs, "export", help="every feed as OPML 2.0")
    fe.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")

    st = cmd("stories", "the stories being tracked")
    ss = st.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(ss, "list", help="every story: id, title, window, enabled")
    sa = _sub(ss, "add", help="derive a story from a reference article and write it as a plugin",
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
    sh = _sub(ss, "show", help="a story's full definition, as its current version decides",
              description="A story's full definition: window, threshold, rules with their weights, facets, names,\n"
                          "anchors, top terms, and the names its current version learned from the stored articles.")
    sh.add_argument("id", help="the story's id (`monitor stories list`)")
    sh.add_argument("--versions", action="store_true", help="list the story's model versions instead, newest "
                    "first, with what changed in each (definition, learned names, judgments)")
    sr = _sub(ss, "rebuild", help="make the story's next model version from the names it learned and the "
              "judgments made since",
              epilog="Decisions name the version that made them; a version only changes on purpose: here,\n"
                     "on the daemon's schedule (schedule.rebuild_stories), or when the story is edited.\n"
                     "Stored matches keep their version: `stories backfill ID` re-scores them.")
    sr.add_argument("id", help="the story's id (`monitor stories list`)")
    sr.add_argument("--dry-run", action="store_true", help="say whether a new version would be made, write nothing")
    stt = _sub(ss, "test", help="explain, rule by rule, a story's decision on one article")
    stt.add_argument("id", help="the story's id (`monitor stories list`)")
    stt.add_argument("source", metavar="URL|FILE", help="the article: http(s) URL, or a text or HTML file")
    sb = _sub(ss, "backfill", help="make the story's next version and re-score stored articles with it",
              epilog="Articles are chosen by publication time (else first seen) in [since, until).\n"
                     "The story's next version (names learned and judgments made since) is recorded first.\n"
                     "Run with --dry-run first: it writes nothing and says what the new version would change.")
    sb.add_argument("id", help="the story's id (`monitor stories list`)")
    sb.add_argument("--since", metavar="T", type=_time_arg, help="only articles from T (inclusive)")
    sb.add_argument("--until", metavar="T", type=_time_arg, help="only articles before T")
    sb.add_argument("--dry-run", action="store_true", help="count and show the changes, write nothing")
    sb.add_argument("--keep-version", action="store_true", help="re-score with the story's current version instead "
                    "of making the next one (with --dry-run: check that stored decisions are what it decides)")

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
    _sub(rules.add_subparsers(dest="action", metavar="ACTION", required=True),
         "list", help="every rule a story can use: name, version and where it comes from (built in or a plugin)")

    ev = cmd("eval", "score a story on a labelled corpus (offline), or on its own judged articles",
             epilog="--corpus FILE.jsonl: one article a line with at least `id` and `label` (on, brief or off);\n"
                    "docs/eval-corpus.md describes every key. A bad row is refused with its line number before\n"
                    "anything is scored. Prints precision, recall, F1, a threshold sweep and the reliability of\n"
                    "the scores.\n\n"
                    "--judgments: the stored articles analysts judged with `monitor judge`, scored with k-fold\n"
                    "cross-validation (5 folds, fewer with fewer articles): each fold is scored by the story's\n"
                    "profile moved by the other folds' judgments only, as a new version would move it; the\n"
                    "story as defined is scored on the same articles beside it. Needs 5 judged articles.\n\n"
                    "examples:\n  monitor eval --corpus labelled.jsonl --story trump-kim-summit-2018\n"
                    "  monitor eval --judgments --story harbour-strike")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", type=Path, metavar="FILE.jsonl",
                        help="the labelled articles (format: docs/eval-corpus.md)")
    source.add_argument("--judgments", action="store_true",
                        help="the story's own judged articles, stored in the database, with cross-validation")
    ev.add_argument("--story", metavar="ID", help="story to score (default: the first enabled one)")

    db = cmd("db", "database schema")
    ds = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(ds, "upgrade", help="create or upgrade the schema to this version of monitor",
         description="Create the tables of a new database, or migrate an older one to this version of monitor.\n"
                     "Stored articles and matches are kept. Stop the daemons using the database first.")
    _sub(ds, "status", help="whether the schema is current")
    dp = _sub(ds, "prune", help="apply the [retention] policy now: drop old unmatched articles or their text",
              epilog="Matched articles are kept whole with their evidence. Unmatched articles first seen more\n"
                     "than retention.drop_unmatched_after ago are deleted (their URLs are kept, so no feed\n"
                     "brings them back); those older than retention.drop_bodies_after lose their body and\n"
                     "summary. The daemon does the same a few batches a tick; this does it all now, in\n"
                     "batches of retention.batch_size.\n\n"
                     "examples:\n  monitor db prune --dry-run      count, write nothing\n  monitor db prune")
    dp.add_argument("--dry-run", action="store_true", help="count what would be pruned, write nothing")

    cfg = cmd("config", "configuration keys and checks")
    cs = cfg.add_subparsers(dest="action", metavar="ACTION", required=True)
    _sub(cs, "keys", help="every configuration key with its default and meaning",
         description="Every configuration key with its default and meaning; config.example.toml shows them in use.")
    _sub(cs, "check", help="load the configuration and the stories, report problems",
         description="Load the configuration and every enabled story as `run` would, and say what is wrong, with\n"
                     "file:line (exit 2), or which file, feeds, stories and database are in use.")

    demo = cmd("demo", "an offline tour: serve a small bundled news site, run one pass, print the digest")
    demo.add_argument("--format", default="text", choices=("text", "markdown", "html", "json", "csv"),
                      help="format of the digest printed at the end (as `report --format`)")
    demo.add_argument("--keep", metavar="DIR", type=Path, help="keep the demo database and site in DIR")

    srv = cmd("serve", "serve the Miniflux webhook and the read API over HTTP",
              epilog="Listens on [serve] host and port (default 127.0.0.1:8080): POST /webhooks/miniflux takes\n"
                     "Miniflux's signed new_entries events (secret: serve.miniflux_secret or\n"
                     "$MONITOR_MINIFLUX_SECRET), /api serves stories, matches and digests, /docs and /redoc document\n"
                     "it (offline: nothing is loaded from another machine), / links them and the stories.\n"
                     "Entries are processed in the background; stop with Ctrl-C or SIGTERM.")
    srv.add_argument("--host", help="address to listen on (default: serve.host)")
    srv.add_argument("--port", type=int, help="port to listen on (default: serve.port)")

    ing = cmd("ingest", "bring in coverage published before you started: web archives, sitemaps, URL lists",
              epilog="The pages go through the path a polled page takes: dedup, extraction, story matching,\n"
                     "storage. `monitor report` then shows the matches, each saying where it came from.")
    ins = ing.add_subparsers(dest="what", metavar="WHAT", required=True)
    iw = ins.add_parser("warc", help="the HTML pages of WARC files (.warc, .warc.gz), e.g. Common Crawl's CC-NEWS",
                        formatter_class=_Formatter,
                        description="Read WARC files record by record and store every HTML response (status 200,\n"
                                    "text/html or XHTML) as an article: its URL, headers and bytes as captured, the\n"
                                    "WARC-Date as the time it was first seen.",
                        epilog="Other records (requests, metadata, redirects, images), records over fetch.max_page_bytes,\n"
                               "truncated records and unreadable stretches (a bad gzip member) are counted and skipped;\n"
                               "the summary line says how many. An interrupted run (Ctrl-C, a crash) resumes where it\n"
                               "stopped: the offset reached in each file is kept in the database, and nothing is stored\n"
                               "twice. Articles are recorded under the feed warc:FILE-NAME.\n\nexamples:\n"
                               "  monitor ingest warc CC-NEWS-20180612*.warc.gz --story trump-kim-summit-2018\n"
                               "  monitor ingest warc crawl.warc --since 2018-03-01 --until 2018-09-01")
    iw.add_argument("files", nargs="+", type=Path, metavar="FILE", help="WARC files, gzipped or not")
    iw.add_argument("--since", metavar="T", type=_time_arg, help="only records captured from T on (WARC-Date)")
    iw.add_argument("--until", metavar="T", type=_time_arg, help="only records captured before T")
    iw.add_argument("--story", metavar="ID", action="append",
                    help="match against this story only (repeatable; default: every enabled story)")
    ism = ins.add_parser("sitemap", help="the pages a sitemap lists (news sitemaps, sitemap indexes)",
                         formatter_class=_Formatter,
                         description="Fetch the sitemap at URL (and the sitemaps an index lists), then fetch and store\n"
                                     "the pages it lists, through the same guarded fetcher, per-host limits and deadlines\n"
                                     "as a poll. Pages are dated by news:publication_date, else lastmod.",
                         epilog="Pages stored already are not fetched again. Articles are recorded under the feed\n"
                                "sitemap:URL.\n\nexample:\n"
                                "  monitor ingest sitemap https://example.org/news-sitemap.xml \\\n"
                                "      --since 2018-06-01 --until 2018-07-01")
    ism.add_argument("url", metavar="URL", help="the sitemap or sitemap index (http(s); gzipped or not)")
    ism.add_argument("--since", metavar="T", type=_time_arg, help="only pages dated from T on (undated pages are left out)")
    ism.add_argument("--until", metavar="T", type=_time_arg, help="only pages dated before T")
    ism.add_argument("--story", metavar="ID", action="append", help="match against this story only (repeatable)")
    iu = ins.add_parser("urls", help="the pages of a list of URLs (a file, or - for standard input)",
                        formatter_class=_Formatter,
                        description="Fetch and store the page at every URL of FILE (one a line; blank lines and lines\n"
                                    "starting with # are ignored), through the same guarded fetcher as a poll.",
                        epilog="Lines that are not http(s) URLs are counted and skipped; pages stored already are not\n"
                               "fetched again. Articles are recorded under the feed urls:FILE-NAME (urls:stdin).\n\n"
                               "example:\n  grep summit links.txt | monitor ingest urls -")
    iu.add_argument("file", metavar="FILE", help="the list of URLs, or - for standard input")
    iu.add_argument("--story", metavar="ID", action="append", help="match against this story only (repeatable)")

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
        path = find_config(args.config)
        settings = load_settings(path)
        if args.database:
            settings = with_database(settings, args.database)
        elif args.command not in _NO_CONFIG_NEEDED:
            check_database(settings)
        _setup_logging(settings, args)
        if args.command not in _NO_CONFIG_NEEDED and not args.quiet:
            _say_which_config(args, path, settings)
        return _COMMANDS[args.command](settings, args)
    except MonitorError as e:
        print(f"monitor: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        print("monitor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


# Commands that read no configuration: naming the one in use would only be noise.
_NO_CONFIG_NEEDED = frozenset({"demo"})


def _say_which_config(args: argparse.Namespace, path: Path | None, settings: Settings) -> None:
    """On stderr, where a script's output is not disturbed: the configuration in use when it was
    not named on the command line, and a warning when there is none."""
    from monitor.db.engine import masked_url

    if path is None:
        print(f"monitor: no configuration found (no --config, no $MONITOR_CONFIG, no ./{DEFAULT_CONFIG_NAME}): "
              f"using the defaults, database {masked_url(settings.database_url)}; copy config.example.toml "
              f"to ./{DEFAULT_CONFIG_NAME} to start one", file=sys.stderr)
    elif not args.config:
        origin = "$MONITOR_CONFIG" if os.environ.get("MONITOR_CONFIG") else "found in the working folder"
        print(f"monitor: configuration {path} ({origin})", file=sys.stderr)


# -- argument types -------------------------------------------------------------------------

def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 date or date-time (naive = UTC), or a relative `24h`/`7d`/`90m` meaning that long ago."""
    now = now or datetime.now(UTC)
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?\s*(s|m|min|h|d)", t, re.I):
        return now - timedelta(seconds=parse_duration(t))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return datetime.combine(date.fromisoformat(t), dtime(0), tzinfo=UTC)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2018-05-01, 2018-05-24T14:00:00+00:00, or 24h / 7d") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


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
    from monitor.runtime import open_store

    with open_store(settings, create=create) as store:
        yield store


def _story(settings: Settings, story_id: str) -> Any:
    """The story `story_id` as configured, or a plugin story not enabled in the config yet (e.g.
    just added); ConfigError (exit 2) naming the known ones when there is none."""
    stories = configured_stories(settings)
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
    from monitor.runtime import Runtime

    if args.fail_on_errors and not args.once:
        raise ConfigError("--fail-on-errors goes with --once (the daemon keeps running through failures)")
    with Runtime.open(settings) as runtime:
        if args.once:
            summary = run_once(runtime)
            print(summary.line(), file=sys.stderr)
            if args.fail_on_errors and summary.feeds_failed:
                print(f"monitor: {plural(summary.feeds_failed, 'feed')} of {summary.feeds} failed "
                      f"(--fail-on-errors): see `monitor feeds list`", file=sys.stderr)
                return FEED_ERRORS_EXIT
            return 0
        return run_daemon(runtime)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.report import StoryInfo, build_digest, render

    stories = [s for s in configured_stories(settings) if s.enabled]
    if not stories and not args.quiet:
        print("monitor: no story is enabled, so the digest is empty: enable one with a [[stories]] table "
              "(`monitor stories list` shows those known)", file=sys.stderr)
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
                          generated_at=datetime.now(UTC), near_misses=near)
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
                errors = f", {plural(f.error_count, 'error')} in a row" if f.error_count else ""
                print(f"{f.url}\n    {f.title or '(no title yet)'} - {state}, source {f.source}\n"
                      f"    last fetch {_ago(f.last_fetched_at)}: {f.last_status or 'never fetched'}"
                      f"{errors}"
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
    delta = datetime.now(UTC) - dt
    secs = int(abs(delta.total_seconds()))
    if secs >= 86400:
        text = f"{secs // 86400}d"
    elif secs >= 3600:
        text = f"{secs // 3600}h"
    else:
        text = f"{secs // 60}m" if secs >= 60 else f"{secs}s"
    return f"{dt:%Y-%m-%d %H:%M} UTC ({text} {'ago' if delta.total_seconds() >= 0 else 'from now'})"


def cmd_stories(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.db.story_models import current_if_stored
    from monitor.matching import authoring

    if args.action == "add":
        return _story_add(settings, args)
    if args.action == "list":
        stories = configured_stories(settings)
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
                  f"({plural(len(rebuilt.learned), 'learned name')}, {plural(len(rebuilt.judged), 'judgment')})"
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

    with _open_store(settings) as store, StatusLine() as status:
        if args.keep_version:
            from monitor.db.story_models import current_stories

            [story], changed = current_stories(store, [story]), False
        else:
            # The story's next version (learned names and judgments read again), recorded only when applied.
            story, changed = rebuild(store, story, reason="stories backfill", dry_run=args.dry_run)
        if changed:
            print(f"story {story.id}: {'the next version would be' if args.dry_run else 'new version'} {story.version} "
                  f"({plural(len(story.learned), 'learned name')}, {plural(len(story.judged), 'judgment')})")
        summary = backfill(store, story, since=args.since, until=args.until, dry_run=args.dry_run, progress=status)
    verb = ("would add", "would remove", "would refresh") if args.dry_run else ("added", "removed", "refreshed")
    print(f"story {story.id}: {plural(summary.scanned, 'stored article')} scored; {verb[0]} {plural(summary.added, 'match')}, "
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

    print(f"{'RULE':24} {'VERSION':8} ORIGIN")
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
    from monitor.corpus import read_corpus
    from monitor.matching import evaluate_corpus

    stories = [s for s in configured_stories(settings) if s.enabled]
    if not stories:
        raise ConfigError("no enabled story to evaluate")
    story_id = args.story or stories[0].id
    if args.judgments:
        return _eval_judgments(settings, _story(settings, story_id))
    if story_id not in {s.id for s in stories}:
        raise ConfigError(f"no enabled story {story_id!r}; enabled: {', '.join(sorted(s.id for s in stories))}")
    rows = read_corpus(args.corpus)     # every row checked first: a bad one is named by its line
    from monitor.db.story_models import current_if_stored

    # As the story's current version decides, when the database holds one (what the daemon uses).
    stories = [current_if_stored(settings.database_url, s) if s.id == story_id else s for s in stories]
    with StatusLine() as status:
        status(f"scoring {story_id} on {plural(len(rows), 'article')} of {args.corpus}")
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

    if args.action == "prune":
        return _prune(settings, dry_run=args.dry_run)
    engine = make_engine(settings.database_url)
    try:
        if args.action == "upgrade":
            before = schema_status(engine)
            with StatusLine() as status:
                status(f"upgrading the database schema (it was {before}); stop the daemons using it first")
                upgrade(engine)
            print(f"database schema was {before}, now current")
        else:
            status = schema_status(engine)
            print(f"database schema: {status}")
            return 0 if status == "current" else 1
    finally:
        engine.dispose()
    return 0


def _prune(settings: Settings, *, dry_run: bool) -> int:
    from monitor.db.retention import prune
    from monitor.db.store import Store

    if not settings.retention.active:
        raise ConfigError("no retention policy: set drop_unmatched_after and/or drop_bodies_after under [retention] "
                          "(see config.example.toml)")
    with Store.open(settings.database_url) as store:
        counts = prune(store, settings.retention, datetime.now(UTC), dry_run=dry_run,
                       progress=lambda c: log.info("%s", c.line()))
    print(counts.line(dry_run=dry_run))
    if dry_run:
        print("dry run: nothing was written; run again without --dry-run to apply")
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "keys":
        for key, default, help in describe_keys():
            print(f"{key}  (default {default})\n    {help}" if default else f"{key}\n    {help}")
        return 0
    from monitor.db.engine import masked_url

    stories = configured_stories(settings)
    print(f"configuration {settings.path or '(defaults, no file)'} is valid: {plural(len(settings.feeds), 'feed')}, "
          f"{plural(sum(s.enabled for s in stories), 'enabled story', 'enabled stories')}, "
          f"database {masked_url(settings.database_url)}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import run_demo

    return run_demo(args.format, keep=args.keep)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import stop_on_signals
    from monitor.ingest import IngestReport, ingest_urls, ingest_warcs, sitemap_urls
    from monitor.runtime import Runtime

    stories = [s for s in configured_stories(settings) if s.enabled]
    if args.story:
        known = {s.id for s in stories}
        unknown = [s for s in args.story if s not in known]
        if unknown:
            raise ConfigError(f"no enabled story {', '.join(map(repr, unknown))}; enabled: {', '.join(sorted(known)) or 'none'}")
        stories = [s for s in stories if s.id in args.story]
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since and until and since >= until:
        raise ConfigError("--since must be earlier than --until")
    if args.what == "warc":
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            raise ConfigError(f"no such file: {', '.join(missing)}")
    elif args.what == "sitemap":
        _check_url(args.url)
    lines: Any = None
    if args.what == "urls":
        try:
            lines = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")
        except OSError as e:
            raise ConfigError(f"cannot read {args.file}: {e.strerror}") from e
    tty = sys.stderr.isatty()

    def show(report: Any) -> None:
        print(f"\r{report.progress()}\033[K", end="", file=sys.stderr, flush=True)

    stop = threading.Event()
    with Runtime.open(settings, stories=stories) as runtime, stop_on_signals(stop):
        progress = show if tty else None
        if args.what == "warc":
            report = ingest_warcs(runtime, args.files, since=since, until=until, stop=stop,
                                  progress=progress)
        elif args.what == "sitemap":
            report = IngestReport(kind="urls")
            urls = sitemap_urls(settings, args.url, report, since=since, until=until)
            report = ingest_urls(runtime, urls, origin=f"sitemap:{args.url}", report=report,
                                 stop=stop, progress=progress)
        else:
            name = "stdin" if args.file == "-" else Path(args.file).name
            try:
                report = ingest_urls(runtime, lines, origin=f"urls:{name}", stop=stop,
                                     progress=progress)
            finally:
                if lines is not sys.stdin:
                    lines.close()
    if tty:
        print(file=sys.stderr)
    print(report.line())
    return 130 if report.summary.stopped else 1 if report.failed_files else 0


def cmd_reader_sync(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.integrations.reader import sync_database

    with StatusLine() as status:
        result = sync_database(settings, args.reader_db, update=args.update, since=args.since, progress=status)
    print("\n".join(result.lines()))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.server import serve

    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"--port must lie in 1-65535, got {args.port}")
    return serve(settings, host=args.host, port=args.port)


_COMMANDS = {
    "run": cmd_run, "report": cmd_report, "export": cmd_export, "feeds": cmd_feeds, "stories": cmd_stories,
    "judge": cmd_judge, "rules": cmd_rules, "eval": cmd_eval, "db": cmd_db, "config": cmd_config, "demo": cmd_demo,
    "serve": cmd_serve, "reader-sync": cmd_reader_sync, "ingest": cmd_ingest,
}
