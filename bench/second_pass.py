"""Second-pass benchmark: 1,000 feeds that have not changed cost a small share of the first pass.

    python bench/second_pass.py [--feeds 1000] [--per-feed 5] [--database URL]

Serves `feeds` outlets of `per-feed` small articles each (the generated web of bench/ingest.py)
and runs `monitor run --once` twice on one database. On the second pass every feed answers
`304 Not Modified` to the monitor's conditional GET (If-None-Match with the ETag it saved), so
nothing is parsed, fetched or stored again. Prints both passes' times and the ratio, twice: for
the whole command (interpreter start and imports included, what a user waits for) and for the
pass alone (the monitor's own summary line). Target: at most 5%. No assertions.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import NewsWeb, generate_articles, run_pass, write_config  # noqa: E402

TARGET = 0.05    # the second pass takes at most this share of the first


def _ratio(second: float | None, first: float | None) -> str:
    if not first or second is None:
        return "n/a"
    return f"{second / first:.1%}"


def _verdict(second: float | None, first: float | None) -> str:
    if not first or second is None:
        return "unknown"
    return "met" if second / first <= TARGET else "not met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--per-feed", type=int, default=5)
    parser.add_argument("--database", help="database URL (an empty database); default: SQLite in a temporary folder")
    parser.add_argument("--concurrency", type=int, default=16, help="fetch.concurrency and fetch.per_host")
    args = parser.parse_args(argv)

    articles = generate_articles(args.feeds, args.per_feed)
    started = time.monotonic()
    web = NewsWeb(articles)
    print(f"site: {len(web.feed_urls)} feeds, {len(articles)} articles, rendered in "
          f"{time.monotonic() - started:.1f}s at {web.base_url}")
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
            config = write_config(Path(tmp), web.feed_urls, database=args.database, workers=0,
                                  concurrency=args.concurrency)
            first = run_pass(config)
            first_counts = dict(web.counts)
            web.reset_counts()
            second = run_pass(config)
            second_counts = dict(web.counts)
    finally:
        web.close()
    print(f"first pass:  {first.summary}")
    print(f"             requests {first_counts}")
    print(f"second pass: {second.summary}")
    print(f"             requests {second_counts}")
    print(f"first pass time:  {first.wall_seconds:.2f}s command, {first.pass_seconds}s pass")
    print(f"second pass time: {second.wall_seconds:.2f}s command, {second.pass_seconds}s pass")
    print(f"ratio second/first: {_ratio(second.wall_seconds, first.wall_seconds)} command "
          f"({_verdict(second.wall_seconds, first.wall_seconds)}), "
          f"{_ratio(second.pass_seconds, first.pass_seconds)} pass ({_verdict(second.pass_seconds, first.pass_seconds)}); "
          f"target <= 5%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
