"""What every part of the Store shares: the engine, one transaction per call, and the limits of
what a column can index.

`monitor.db.store.Store` is the one face of the database; its methods live in the files named
after what they store (`feeds`, `articles`), each a mixin over `StoreBase`. The modules that
keep their own state (`leases`, `alerts`, `inbox`, ...) take the Store, never a bare engine.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from monitor.db import models as m
from monitor.db.engine import dialect_insert, transaction
from monitor.exceptions import StorageError

# Long IN-lists are split: SQLite limits bound parameters per statement, and huge
# statements hold locks longer than needed.
CHUNK = 500
# PostgreSQL refuses B-tree index entries above ~2.7 kB; unique columns stay well below.
MAX_INDEXED_BYTES = 2000

_T = TypeVar("_T")


class StoreBase:
    """The engine and its transactions; `monitor.db.store.Store` is what callers hold."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect_name = engine.dialect.name
        self.insert: Callable[[Any], sqlite.Insert | postgresql.Insert] = dialect_insert(engine)

    def transaction(self) -> AbstractContextManager[Connection]:
        """One short transaction on a pooled connection; errors come out as StorageError."""
        return transaction(self.engine)


def now() -> datetime:
    return datetime.now(UTC)


def chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def indexed_size(value: str) -> int:
    """The bytes `value` takes in an indexed column (as SafeText stores it)."""
    return len(m.clean_text(value).encode("utf-8"))


def check_indexable(url: str, what: str) -> None:
    """StorageError when `url` is too long for a unique (indexed) column."""
    size = indexed_size(url)
    if size > MAX_INDEXED_BYTES:
        raise StorageError(f"{what} too long to store ({size} bytes, limit {MAX_INDEXED_BYTES}): {url[:120]}...")


def stored_key(key: str) -> str:
    """The key as stored: a digest stands in for keys too long to index (hostile feeds send any guid)."""
    stored = m.clean_text(key)
    if len(stored.encode("utf-8")) > MAX_INDEXED_BYTES:
        return "sha256:" + hashlib.sha256(stored.encode("utf-8")).hexdigest()
    return stored
