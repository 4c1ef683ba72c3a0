"""Retention benchmark: bytes stored per article today, and the database after 100,000 articles
with and without a `[retention]` policy.

    python bench/retention.py [--feeds 20] [--per-feed 100] [--articles 100000] [--database URL]

1. Today: a real `monitor run --once` (bench/ingest.py's generated news web on 127.0.0.1, the
   summit story on) stores `feeds x per-feed` articles into a new SQLite file; the file's size
   (checkpointed, vacuumed) divided by the articles stored is the cost of one article, all tables
   and indexes included, broken down by table where SQLite has the dbstat table.
2. 100,000 articles: fetching and extracting that many pages takes several minutes on 2 cores,
   so the rows are generated directly instead: the articles of step 1 (their real titles, bodies,
   summaries, matches and evidence) cloned under new URLs, each with its feed entry, 1,000 first
   seen a day over 100 days, written through `Store.store_articles` (the path a pass writes by).
   The size is taken without retention, then after `monitor.db.retention.prune` with
   drop_bodies_after = 7 days and drop_unmatched_after = 30 days, each after VACUUM (VACUUM FULL
   on PostgreSQL) so that both measure live data, not free pages.

With `--database URL` (an empty PostgreSQL database) step 2 runs there; sizes are then the sum
of pg_total_relation_size over the monitor's tables. No assertions: the figures are for people.
"""
from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import NewsWeb, generate_articles, run_pass, write_config  # noqa: E402

from monitor._types import Article, MatchResult  # noqa: E402
from monitor.config import RetentionSettings  # noqa: E402
from monitor.db import models as m  # noqa: E402
from monitor.db.retention import prune  # noqa: E402
from monitor.db.store import ArticleWrite, Store  # noqa: E402

PER_DAY = 1000
POLICY = RetentionSettings(drop_bodies_after=7 * 86400.0, drop_unmatched_after=30 * 86400.0, batch_size=500)


def database_bytes(engine: Engine) -> int:
    """Live size of the monitor's data: the SQLite file, or the PostgreSQL tables and indexes."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return Path(engine.url.database or "").stat().st_size
    with engine.connect() as conn:
        return int(conn.scalar(text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = current_schema()")) or 0)


def vacuum(engine: Engine) -> None:
    """Give free pages back, so that sizes measure live data."""
    if engine.dialect.name == "sqlite":
        engine.dispose()     # the engine opens every transaction with BEGIN; VACUUM needs none
        with sqlite3.connect(engine.url.database or "") as conn:
            conn.execute("VACUUM")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM FULL")


def by_table(engine: Engine) -> list[tuple[str, int]]:
    """Bytes per table and index (SQLite's dbstat), largest first; empty where dbstat is missing."""
    try:
        with engine.connect() as conn:
            return [(name, int(size)) for name, size in conn.execute(text(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"))]
    except Exception:
        return []


def measure_today(folder: Path, feeds: int, per_feed: int) -> tuple[Path, int]:
    """Step 1: a real pass into a new SQLite file; prints bytes per article. Returns (file, articles)."""
    web = NewsWeb(generate_articles(feeds, per_feed))
    try:
        config = write_config(folder, web.feed_urls, database=None, workers=0, concurrency=16)
        run = run_pass(config)
    finally:
        web.close()
    print(f"real pass: {run.summary}")
    db = folder / "bench.db"
    with Store.open(f"sqlite:///{db}") as store:
        vacuum(store.engine)
        size, articles = database_bytes(store.engine), store.count_articles()
        with store.engine.connect() as conn:
            text_bytes = conn.scalar(select(func.sum(func.length(m.Article.body) + func.length(m.Article.summary)
                                                     + func.length(m.Article.title)))) or 0
            matches = conn.scalar(select(func.count()).select_from(m.Match)) or 0
        print(f"today: {articles} articles ({matches} matched) in {size / 1024:.0f} KiB: "
              f"{size / max(articles, 1):.0f} bytes per article, of which {text_bytes / max(articles, 1):.0f} "
              f"characters of text (title, summary, body)")
        for name, table_bytes in by_table(store.engine)[:8]:
            print(f"    {name:40} {table_bytes / max(articles, 1):7.0f} bytes per article")
    return db, articles


def templates(db: Path) -> list[tuple[Article, list[MatchResult]]]:
    """The articles of the real pass, with their matches, to clone."""
    with Store.open(f"sqlite:///{db}") as store:
        found: dict[str, list[MatchResult]] = {}
        for s in store.matches(None, None, None):
            found.setdefault(s.canonical_url, []).append(
                MatchResult(s.story_id, True, s.score, s.evidence, {"bench": "1"}, s.best_passage))
        return [(Article(url=a.url, final_url=a.final_url, feed_url=a.feed_url, title=a.title, body=a.body,
                         fetched_at=a.fetched_at, published=a.published, author=a.author, outlet=a.outlet,
                         lang=a.lang, summary=a.summary, source=a.source, entry_key=a.url),
                 found.get(a.url, []))
                for a in store.iter_articles()]


def generate(store: Store, models: list[tuple[Article, list[MatchResult]]], total: int, end: datetime) -> None:
    """`total` articles cloned from `models`, PER_DAY first seen a day up to `end`, each with its entry."""
    feed_urls = sorted({a.feed_url for a, _r in models})
    store.sync_feeds([(url, None, None) for url in feed_urls])
    feed_ids = {f.url: f.id for f in store.list_feeds()}
    start = end - timedelta(days=total / PER_DAY)
    batch: list[ArticleWrite] = []
    started = time.monotonic()
    for n in range(total):
        model, results = models[n % len(models)]
        seen = start + timedelta(seconds=n * 86400 / PER_DAY)
        url = f"{model.url.rstrip('/')}/copy-{n}"
        article = dataclasses.replace(model, url=url, final_url=url, fetched_at=seen, entry_key=f"copy-{n}")
        batch.append(ArticleWrite(article, results, [(feed_ids[model.feed_url], f"copy-{n}", url)]))
        if len(batch) == 500 or n == total - 1:
            store.store_articles(batch, seen)
            batch = []
        if (n + 1) % 20000 == 0:
            print(f"    generated {n + 1} articles ({(n + 1) / (time.monotonic() - started):.0f} a second)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--per-feed", type=int, default=100)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--database", help="an empty PostgreSQL database for step 2; default: SQLite in a temporary folder")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="monitor-retention-") as tmp:
        folder = Path(tmp)
        db, _articles = measure_today(folder, args.feeds, args.per_feed)
        models = templates(db)
        url = args.database or f"sqlite:///{folder / 'big.db'}"
        print(f"generating {args.articles} articles directly (rows cloned from the real pass's {len(models)}; "
              f"{PER_DAY} first seen a day) into {url.split('?')[0]}")
        end = datetime.now(UTC)
        with Store.open(url, create=True) as store:
            generate(store, models, args.articles, end)
            vacuum(store.engine)
            without = database_bytes(store.engine)
            stored = store.count_articles()
            print(f"without retention: {stored} articles, {without / 2**20:.1f} MiB "
                  f"({without / max(stored, 1):.0f} bytes per article)")
            started = time.monotonic()
            counts = prune(store, POLICY, end)
            seconds = time.monotonic() - started
            vacuum(store.engine)
            with_policy = database_bytes(store.engine)
            kept = store.count_articles()
            print(f"prune (drop_bodies_after 7d, drop_unmatched_after 30d, batches of {POLICY.batch_size}): "
                  f"{counts.line()} in {seconds:.1f}s ({counts.articles_deleted / max(seconds, 1e-9):.0f} "
                  f"articles deleted a second)")
            print(f"with retention: {kept} articles left, {with_policy / 2**20:.1f} MiB "
                  f"({with_policy / max(without, 1):.2f} x the size without)")
            for name, table_bytes in by_table(store.engine)[:6]:
                print(f"    {name:40} {table_bytes / 2**20:7.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
