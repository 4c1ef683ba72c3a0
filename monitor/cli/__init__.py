"""The command line: `monitor [--config FILE] COMMAND ...`.

Every command reads the configuration the same way, opens the store the same way and turns
every MonitorError into one clear line on stderr (never a traceback for a user mistake).
The grammar is monitor.cli.parser; each command group is a module of its own (run, report,
feeds, stories, judge, evaluate, db, configuration, ingest, serve) whose logic returns values
and whose render_* functions make the text printed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.cli.configuration import cmd_config
from monitor.cli.db import cmd_db
from monitor.cli.evaluate import cmd_eval
from monitor.cli.feeds import cmd_feeds
from monitor.cli.ingest import cmd_ingest, cmd_reader_sync
from monitor.cli.judge import cmd_judge
from monitor.cli.parser import FEED_ERRORS_EXIT, build_parser, parse_time
from monitor.cli.report import cmd_export, cmd_report
from monitor.cli.run import cmd_demo, cmd_run
from monitor.cli.serve import cmd_serve
from monitor.cli.stories import cmd_rules, cmd_stories
from monitor.config import (
    DEFAULT_CONFIG_NAME,
    Settings,
    check_database,
    find_config,
    load_settings,
    with_database,
)
from monitor.exceptions import ConfigError, MonitorError

__all__ = ["FEED_ERRORS_EXIT", "build_parser", "main", "parse_time"]


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


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "run": cmd_run, "report": cmd_report, "export": cmd_export, "feeds": cmd_feeds, "stories": cmd_stories,
    "judge": cmd_judge, "rules": cmd_rules, "eval": cmd_eval, "db": cmd_db, "config": cmd_config, "demo": cmd_demo,
    "serve": cmd_serve, "reader-sync": cmd_reader_sync, "ingest": cmd_ingest,
}

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
