"""Shared fixtures: database URLs. A fresh, empty database for every test that asks."""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.db.engine import make_engine

_PG_ENV = "MONITOR_TEST_DATABASE_URL"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get(_PG_ENV)
    if not url:
        pytest.skip(f"set {_PG_ENV}=postgresql://... to run PostgreSQL tests")
    return url


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """`pg_url` narrowed to a new schema of its own, dropped afterwards.

    The schema comes first in search_path, so every table, Alembic's version table
    included, lands in it.
    """
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A URL of a fresh, empty database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_schema_url")
