"""`monitor ingest` (web archives, sitemaps, URL lists) and `monitor reader-sync` (a reader
database): coverage brought in from elsewhere than the feeds' polls."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from monitor.cli.common import check_url, check_window, enabled_stories, only_wanted
from monitor.config import Settings
from monitor.exceptions import ConfigError
from monitor.progress import StatusLine


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import stop_on_signals
    from monitor.ingest import IngestReport, ingest_urls, ingest_warcs, sitemap_urls
    from monitor.runtime import Runtime

    stories = only_wanted(enabled_stories(settings), args.story)
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    check_window(since, until)
    if args.what == "warc":
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            raise ConfigError(f"no such file: {', '.join(missing)}")
    elif args.what == "sitemap":
        check_url(args.url)
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
