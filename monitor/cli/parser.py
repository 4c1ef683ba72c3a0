"""The command line's grammar: every command, its arguments and its `--help` text.

Only the parser lives here; each command group's logic and rendering is a module of its own
(monitor/cli/*.py), and monitor.cli.main runs them.
"""
from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor._types import JUDGMENT_LABELS
from monitor.config import parse_duration

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
    parser: argparse.ArgumentParser = group.add_parser(name, help=help, **kw)
    return parser


_MATCH_ONLY = "match against this story only (repeatable)"     # an ingest command's --story


def _window(parser: argparse.ArgumentParser, *, since: str | None = None, until: str | None = None,
            story: str | None = None) -> None:
    """The options that narrow what a command reads, each with its own help (an option with no help
    is left out): --since T and --until T, the window [since, until); --story ID, repeatable."""
    if since is not None:
        parser.add_argument("--since", metavar="T", type=_time_arg, help=since)
    if until is not None:
        parser.add_argument("--until", metavar="T", type=_time_arg, help=until)
    if story is not None:
        parser.add_argument("--story", metavar="ID", action="append", help=story)


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
    _window(rep, since="start of the window (inclusive)", until="end of the window (exclusive)",
            story="only this story (repeatable)")
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
    _window(sb, since="only articles from T (inclusive)", until="only articles before T")
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
    _window(iw, since="only records captured from T on (WARC-Date)", until="only records captured before T",
            story="match against this story only (repeatable; default: every enabled story)")
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
    _window(ism, since="only pages dated from T on (undated pages are left out)", until="only pages dated before T",
            story=_MATCH_ONLY)
    iu = ins.add_parser("urls", help="the pages of a list of URLs (a file, or - for standard input)",
                        formatter_class=_Formatter,
                        description="Fetch and store the page at every URL of FILE (one a line; blank lines and lines\n"
                                    "starting with # are ignored), through the same guarded fetcher as a poll.",
                        epilog="Lines that are not http(s) URLs are counted and skipped; pages stored already are not\n"
                               "fetched again. Articles are recorded under the feed urls:FILE-NAME (urls:stdin).\n\n"
                               "example:\n  grep summit links.txt | monitor ingest urls -")
    iu.add_argument("file", metavar="FILE", help="the list of URLs, or - for standard input")
    _window(iu, story=_MATCH_ONLY)

    rs = cmd("reader-sync", "hand the entries of a reader (the feed-reader library) database to the monitor",
             epilog="Opens READER_DB with the monitor's reader plugin, updates reader's due feeds with --update,\n"
                    "hands over the entries the monitor has not seen (only feeds changed since the last\n"
                    "hand-over are compared) and processes them: pages, extraction, matching, storage.\n"
                    "Then `monitor report` shows the matches.\n\nexamples:\n"
                    "  monitor reader-sync ~/.local/share/reader/db.sqlite --update\n"
                    "  monitor reader-sync db.sqlite --since 2018-05-01     older entries are skipped for good")
    rs.add_argument("reader_db", metavar="READER_DB", help="reader's database file")
    rs.add_argument("--update", action="store_true", help="let reader update its due feeds first")
    _window(rs, since="hand over only entries published from T on (first catch-up of a large history)")
    return p


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
