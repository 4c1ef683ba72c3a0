"""`monitor db`: upgrade the schema, say whether it is current, prune by the retention policy."""
from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime

from monitor.config import Settings
from monitor.exceptions import ConfigError
from monitor.progress import StatusLine

log = logging.getLogger("monitor")


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
            state = schema_status(engine)
            print(f"database schema: {state}")
            return 0 if state == "current" else 1
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
