"""Engines for the two supported databases: SQLite (default) and PostgreSQL."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.exceptions import MissingExtraError, StorageError
from monitor.extras import missing_modules, require_extra

_SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections one process keeps open to PostgreSQL, and how many more it may open under load.
# A daemon's pass writes from one thread: it uses one or two; `monitor serve` one per request in flight.
POOL_SIZE = 5
POOL_OVERFLOW = 10


def make_engine(url: str) -> Engine:
    """An engine for `url`, checked to be reachable.

    A relative SQLite path is used as given: resolving it (against the config file's folder)
    is the caller's job. `postgresql://` URLs get the psycopg 3 driver.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    # Messages show the URL as the user wrote it, not the driver URL it was rewritten to.
    if backend == "sqlite":
        engine = create_engine(parsed)
        _configure_sqlite(engine)
    elif backend == "postgresql":
        # pre_ping: a daemon outlives server restarts and idle-connection reaping. The pool is
        # the bound on what one process asks of the server (docs/scaling.md, "Connections");
        # the name shows the monitor's sessions in pg_stat_activity.
        connect_args = {} if "application_name" in parsed.query else {"application_name": "monitor"}
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                               connect_args=connect_args)
    else:
        raise StorageError(
            f"unsupported database {masked_url(url)}: {_SUPPORTED}"
        )
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as e:
        engine.dispose()
        raise StorageError(f"cannot open database {masked_url(url)}: {describe_error(e)}; {_hint(backend)}") from e
    return engine


_SUPPORTED = "use sqlite:///PATH or postgresql://USER@HOST/DB"
_DRIVERS = {"sqlite": ("sqlite", "sqlite+pysqlite"),
            "postgresql": ("postgresql", "postgres", "postgresql+psycopg")}


def url_problem(url: str, *, as_written: str | None = None) -> str | None:
    """What makes `url` unusable before any connection is tried (None: nothing): not a URL, a
    database other than SQLite and PostgreSQL, an SQLite file in a folder that does not exist.
    Messages show `as_written` (the URL before a relative SQLite path was resolved), if given."""
    shown = masked_url(as_written or url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{shown} is not a database URL: {_SUPPORTED}"
    if not any(parsed.drivername in names for names in _DRIVERS.values()):
        return f"unsupported database {shown}: {_SUPPORTED}"
    if parsed.drivername in _DRIVERS["postgresql"] and (missing := missing_modules("postgres")):
        return str(MissingExtraError("postgres", f"the PostgreSQL database {shown}", missing))
    path = parsed.database if parsed.drivername.startswith("sqlite") else None
    if path and path != ":memory:" and not path.startswith("file:"):
        folder = Path(path).parent
        if not folder.is_dir():
            return f"the folder of the SQLite database {shown} does not exist: create {folder} first"
    return None


def masked_url(url: str | URL) -> str:
    """The URL as a person may see it in logs and messages: password hidden, and the driver this
    module chose for `postgresql://` (an engine's URL) not shown, as the user did not write it."""
    if isinstance(url, URL) and url.drivername == "postgresql+psycopg":
        url = url.set(drivername="postgresql")
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            written = str(url)
            return repr(written.split("@")[-1]) if "@" in written else repr(written)
    return url.render_as_string(hide_password=True)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        # The message of ArgumentError repeats the URL, password included.
        raise StorageError("invalid database URL: expected sqlite:///PATH or postgresql://USER@HOST/DB") from e
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        require_extra("postgres", f"the PostgreSQL database {masked_url(url)}")
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see "begin"):
        # sqlite3 otherwise starts them lazily, leaving DDL and reads outside any transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers (report, export) never block the daemon's writer, nor it them.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def describe_error(error: SQLAlchemyError) -> str:
    """The first line of what the database driver said, for a person."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _hint(backend: str) -> str:
    if backend == "sqlite":
        return "check that the folder exists and is writable"
    return "check that the server is running and the host, port, user, password and database name are right"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; a database error comes out as a StorageError naming the database."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as e:
        raise StorageError(f"database {masked_url(engine.url)}: {describe_error(e)}") from e


def dialect_insert(engine: Engine) -> Callable[[Any], sqlite.Insert | postgresql.Insert]:
    """The INSERT construct with ON CONFLICT (insert-or-ignore, upsert) for the engine's dialect."""
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    raise StorageError(f"unsupported database dialect {engine.dialect.name!r}: use SQLite or PostgreSQL")
