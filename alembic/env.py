"""Alembic environment: migrates the connection that monitor.db.migrate hands over.

There is no alembic.ini; run migrations with `monitor db upgrade` or monitor.db.migrate.
"""
from __future__ import annotations

from typing import Any

from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from alembic import context
from monitor.db.models import Base, SafeText, UTCDateTime


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    # Migration scripts are history: they must not import today's model code, so the
    # project's column types are written as the plain SQLAlchemy types they store as.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, SafeText):
        return "sa.Text()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if context.is_offline_mode() or _connection is None:
    raise RuntimeError("run migrations through monitor.db.migrate (`monitor db upgrade`), which passes a connection")
_run(_connection)
