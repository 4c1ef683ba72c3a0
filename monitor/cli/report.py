"""`monitor report` (the digest of stored matches) and `monitor export` (stored articles)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from monitor.cli.common import check_window, enabled_stories, only_wanted, open_store, write_output
from monitor.config import Settings
from monitor.exceptions import ConfigError


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.report import render

    digest = report_digest(settings, args)
    color = args.format == "text" and not args.output and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    write_output(render(digest, args.format, color=color), args.output)
    return 0


def report_digest(settings: Settings, args: argparse.Namespace) -> Any:
    """The digest `report` asked for: its stories, window and, with --near-misses, the near misses."""
    from monitor.report import StoryInfo, build_digest

    stories = enabled_stories(settings)
    if not stories and not args.quiet:
        print("monitor: no story is enabled, so the digest is empty: enable one with a [[stories]] table "
              "(`monitor stories list` shows those known)", file=sys.stderr)
    stories = only_wanted(stories, args.story)
    check_window(args.since, args.until)
    if args.near_misses and args.format == "csv":
        raise ConfigError("--near-misses goes with --format text, markdown, html or json (CSV lists matches only)")
    near = None
    with open_store(settings) as store:
        matches = store.matches([s.id for s in stories], args.since, args.until)
        if args.near_misses:
            from monitor.db.browse import near_misses

            near, _ = near_misses(store, [s.id for s in stories], since=args.since, until=args.until)
    return build_digest([StoryInfo.of(s) for s in stories], matches, since=args.since, until=args.until,
                        generated_at=datetime.now(UTC), near_misses=near)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    with open_store(settings) as store:
        for row in exported_articles(store):
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


def exported_articles(store: Any) -> Iterator[dict[str, Any]]:
    """Every stored article as `export articles` writes it, one dict each."""
    for a in store.iter_articles():
        yield {
            "url": a.final_url or a.url, "canonical_url": a.url, "feed_url": a.feed_url, "title": a.title,
            "author": a.author, "outlet": a.outlet, "body": a.body, "summary": a.summary,
            "published": _iso(a.published), "lang": a.lang, "fetched_at": _iso(a.fetched_at), "source": a.source,
        }


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None
