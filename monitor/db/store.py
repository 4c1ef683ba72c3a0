"""The Store: the one face of the monitor's database.

Each call is its own short transaction on its own pooled connection, so one Store may be shared
by the threads of one process. Every write is idempotent: rows that already exist are left alone.

Its methods live in the files named after what they store:
- `monitor.db.feeds`: feeds, their check results, poll states and moves (`FeedStore`);
- `monitor.db.articles`: entries, articles, failed pages, matches and near misses (`ArticleStore`).
The rooms that keep state of their own take the Store: `leases` (several daemons on one
database), `alerts` (what was sent), `inbox` (entries other aggregators handed over),
`archives` (WARC progress), `retention`, `story_state` and `story_models` (what stories learned
and were told), and the reads of the API and the workspace (`browse`, `workspace`).
"""
from __future__ import annotations

from types import TracebackType

from monitor.db.articles import ArticleRow, ArticleStore, ArticleWrite
from monitor.db.engine import make_engine
from monitor.db.feeds import FeedResult, FeedStore
from monitor.db.migrate import require_current

__all__ = ["ArticleRow", "ArticleWrite", "FeedResult", "Store"]


class Store(FeedStore, ArticleStore):
    """The database: open one per process (`Store.open`) and share it between its threads."""

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> Store:
        """Connect to `url` and check its schema; `create` migrates an empty database."""
        engine = make_engine(url)
        try:
            require_current(engine, create_if_empty=create)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
