"""`monitor run` (the daemon, or one pass with --once) and `monitor demo` (an offline tour)."""
from __future__ import annotations

import argparse
import sys

from monitor.cli.parser import FEED_ERRORS_EXIT
from monitor.config import Settings
from monitor.exceptions import ConfigError
from monitor.wording import plural


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


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.daemon import run_demo

    return run_demo(args.format, keep=args.keep)
