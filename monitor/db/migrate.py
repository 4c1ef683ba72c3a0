"""Schema migrations: Alembic driven from code, no alembic.ini.

The scripts live in the top-level `alembic/` folder of a source checkout; wheels carry the same
folder as the package `monitor._alembic` (see pyproject.toml).
"""
from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from alembic import command
from monitor.exceptions import SchemaOutdatedError, StorageError

SchemaStatus = Literal["empty", "unversioned", "current", "outdated", "ahead"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# New revisions are named by date, e.g. 2026_11_25_0002_add_feed_tags.py (pass rev_id="0002").
_FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for this monitor's scripts; env.py migrates `connection`."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()).replace("%", "%%"))
    config.set_main_option("file_template", _FILE_TEMPLATE)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The schema revision this monitor needs."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StorageError(f"migration scripts have {len(heads)} heads ({', '.join(heads)}); expected one")
    return heads[0]


def schema_status(engine: Engine) -> SchemaStatus:
    current = current_revision(engine)
    if current is None:
        # Tables without a version: another application's database, never ours to migrate.
        return "unversioned" if _has_tables(engine) else "empty"
    if current == head_revision():
        return "current"
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(current)
    except CommandError:
        return "ahead"   # a revision this monitor does not know: written by a newer one
    return "outdated"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the schema version: {e}") from e
    if len(heads) > 1:
        raise StorageError(f"database has {len(heads)} schema versions ({', '.join(heads)}); expected one")
    return heads[0] if heads else None


def _has_tables(engine: Engine) -> bool:
    try:
        return bool(set(inspect(engine).get_table_names()) - {"alembic_version"})
    except SQLAlchemyError as e:
        raise StorageError(f"cannot list the database's tables: {e}") from e


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _migrating(engine) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with _migrating(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def require_current(engine: Engine, *, create_if_empty: bool) -> None:
    """Make sure the schema is the one this monitor needs; create it in an empty database if asked."""
    status = schema_status(engine)
    if status == "current":
        return
    if status in ("empty", "unversioned"):
        # Several processes may start together on a new database (a daemon, `serve`, a report):
        # one creates the schema while the others wait, then find it there. Read while it is
        # being created, a schema may look unversioned (its tables before its version), so that
        # too is read again under the lock, once the creation is over.
        with _schema_lock(engine):
            status = schema_status(engine)
            if status == "empty":
                if not create_if_empty:
                    raise SchemaOutdatedError("the database has no monitor schema: run `monitor db upgrade`")
                upgrade(engine)
                status = schema_status(engine)
        if status == "current":
            return
    if status == "unversioned":
        raise SchemaOutdatedError(
            f"database {engine.url.render_as_string(hide_password=True)} has tables but no monitor schema "
            "version: point database.url at an empty database or at a monitor database"
        )
    current, head = current_revision(engine), head_revision()
    if status == "outdated":
        raise SchemaOutdatedError(
            f"database schema is at {current}, this monitor needs {head}: run `monitor db upgrade`"
        )
    raise SchemaOutdatedError(
        f"database schema is at {current}, newer than this monitor ({head}); upgrade monitor"
    )


# Any fixed 64-bit number: the PostgreSQL advisory lock under which the schema is created.
_SCHEMA_LOCK_KEY = 0x6D6F6E69746F72   # "monitor"


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """Hold, across processes, the one lock under which a schema is created.

    PostgreSQL: a session advisory lock, on a connection of its own. SQLite: an exclusive flock on a
    lock file of its own. An in-memory SQLite database is one process's alone.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    # Never a second descriptor on the database file itself: closing it would drop this process's
    # SQLite (POSIX) locks on it. A lock file of its own, in the temporary folder, keyed by the path.
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"monitor-schema-{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _script_location() -> Path:
    checkout = _PACKAGE_DIR.parent / "alembic"
    # Checking for env.py matters: in site-packages, the folder next to `monitor` named
    # "alembic" is the Alembic library itself.
    if (checkout / "env.py").is_file():
        return checkout
    return _PACKAGE_DIR / "_alembic"


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One connection, one transaction, for a whole migration run."""
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild a table by dropping it; with foreign keys on, SQLite
                # would cascade that drop into child rows. The pragma is a no-op inside a
                # transaction, so it goes to the driver before SQLAlchemy begins one.
                _outside_transaction(connection, "PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    yield connection
                    if sqlite:
                        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if violations:
                            raise StorageError(f"migration left {len(violations)} broken foreign keys; rolled back")
            finally:
                if sqlite:
                    _outside_transaction(connection, "PRAGMA foreign_keys=ON")
    except (SQLAlchemyError, CommandError) as e:
        raise StorageError(f"migration failed: {e}") from e


def _outside_transaction(connection: Connection, sql: str) -> None:
    """Run `sql` on the driver's connection, past SQLAlchemy (which would begin a transaction)."""
    driver = connection.connection.driver_connection
    if driver is None:      # only a closed connection has none
        raise StorageError("the database connection closed during the migration")
    driver.execute(sql)
