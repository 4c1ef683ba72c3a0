from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from monitor.db import migrate
from monitor.db.engine import make_engine
from monitor.db.models import Base
from monitor.exceptions import SchemaOutdatedError, StorageError

_REPO = Path(__file__).resolve().parent.parent
_TABLES = {"feeds", "entries", "articles", "matches", "page_failures"}

_NEWER = "9001"
_NEWER_REVISION = '''"""add an index

Revision ID: 9001
Revises: {head}
"""
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_articles_feed_url", "articles", ["feed_url"])


def downgrade() -> None:
    op.drop_index("ix_articles_feed_url", table_name="articles")
'''


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def newer_scripts(tmp_path: Path) -> Path:
    """The real migration scripts plus one more revision, as a newer monitor would ship them."""
    scripts = tmp_path / "alembic"
    shutil.copytree(_REPO / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    text = _NEWER_REVISION.replace("{head}", migrate.head_revision())
    (scripts / "versions" / f"2099_12_01_{_NEWER}_add_an_index.py").write_text(text)
    return scripts


def _use_scripts(monkeypatch: pytest.MonkeyPatch, scripts: Path) -> None:
    monkeypatch.setattr(migrate, "_script_location", lambda: scripts)


def test_upgrade_from_empty_creates_every_table(engine: Engine) -> None:
    assert migrate.schema_status(engine) == "empty"
    migrate.upgrade(engine)
    assert _TABLES <= set(inspect(engine).get_table_names())
    assert migrate.schema_status(engine) == "current"
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert sorted(p.name for p in (_REPO / "alembic" / "versions").glob("*.py"))[-1].split("_")[3] == migrate.head_revision()


def test_migrated_schema_matches_models(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_drops_everything(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.schema_status(engine) == "empty"
    assert not _TABLES & set(inspect(engine).get_table_names())


def test_require_current_creates_an_empty_database_only_when_asked(engine: Engine) -> None:
    with pytest.raises(SchemaOutdatedError, match="run `monitor db upgrade`"):
        migrate.require_current(engine, create_if_empty=False)
    assert migrate.schema_status(engine) == "empty"
    migrate.require_current(engine, create_if_empty=True)
    assert migrate.schema_status(engine) == "current"
    migrate.require_current(engine, create_if_empty=False)


def test_outdated_schema_is_refused_then_upgraded(
    engine: Engine, newer_scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = migrate.head_revision()
    migrate.upgrade(engine)                  # the head of today's scripts
    _use_scripts(monkeypatch, newer_scripts)  # a newer monitor that needs one more revision
    assert migrate.schema_status(engine) == "outdated"
    with pytest.raises(SchemaOutdatedError) as refused:
        migrate.require_current(engine, create_if_empty=True)
    assert str(refused.value) == f"database schema is at {head}, this monitor needs {_NEWER}: run `monitor db upgrade`"
    migrate.upgrade(engine)
    assert migrate.schema_status(engine) == "current"
    assert "ix_articles_feed_url" in {ix["name"] for ix in inspect(engine).get_indexes("articles")}


def test_schema_newer_than_this_monitor_is_refused(
    engine: Engine, newer_scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_scripts(monkeypatch, newer_scripts)
    migrate.upgrade(engine)                  # by a newer monitor
    monkeypatch.undo()                       # back to this monitor, which does not know that revision
    assert migrate.schema_status(engine) == "ahead"
    head = migrate.head_revision()
    with pytest.raises(SchemaOutdatedError, match=rf"at {_NEWER}, newer than this monitor \({head}\); upgrade monitor"):
        migrate.require_current(engine, create_if_empty=True)


def test_failed_migration_is_rolled_back_and_reported(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE matches (id INTEGER PRIMARY KEY)")   # a table in the way
    with pytest.raises(StorageError, match="migration failed"):
        migrate.upgrade(engine)
    assert migrate.schema_status(engine) == "unversioned"     # only the table that was in the way
    assert "feeds" not in inspect(engine).get_table_names()
    with pytest.raises(SchemaOutdatedError, match="has tables but no monitor schema version"):
        migrate.require_current(engine, create_if_empty=True)


def test_unreachable_database_names_the_url_without_password() -> None:
    with pytest.raises(StorageError) as refused:
        make_engine("postgresql://monitor:s3cret@127.0.0.1:1/news")
    message = str(refused.value)
    assert "127.0.0.1:1/news" in message and "s3cret" not in message
    assert "check that the server is running" in message


def test_sqlite_in_a_missing_folder_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="check that the folder exists"):
        make_engine(f"sqlite:///{tmp_path / 'missing' / 'monitor.db'}")


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(StorageError, match="unsupported database"):
        make_engine("mysql://user:pw@localhost/db")


def test_sqlite_connections_use_wal_and_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_installed_layout_finds_the_packaged_scripts(tmp_path: Path) -> None:
    # As in site-packages: the scripts ship as monitor/_alembic, and the folder next to
    # `monitor` named "alembic" is the Alembic library, which must not be taken for them.
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(_REPO / "monitor", site / "monitor", ignore=ignore)
    shutil.copytree(_REPO / "alembic", site / "monitor" / "_alembic", ignore=ignore)
    (site / "alembic").mkdir()
    script = (
        "import sys\n"
        "from monitor.db.engine import make_engine\n"
        "from monitor.db.migrate import schema_status, upgrade\n"
        "engine = make_engine(sys.argv[1])\n"
        "upgrade(engine)\n"
        "print(schema_status(engine))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path / 'installed.db'}"],
        cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "current"


def test_alembic_folder_is_not_a_package() -> None:
    # An __init__.py would make this folder shadow the alembic library in a checkout.
    assert (_REPO / "alembic" / "env.py").is_file()
    assert not (_REPO / "alembic" / "__init__.py").exists()


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from monitor.db.store import Store
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
Store.open(sys.argv[1], create=True).close()
"""


def _open_at_once(url: str, go: Path, processes: int) -> list[subprocess.CompletedProcess[str]]:
    children = [subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, url, str(go)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    go.write_text("go")
    done = []
    for child in children:
        out, err = child.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return done


def test_processes_creating_one_new_sqlite_database_at_once_all_open_it(tmp_path: Path) -> None:
    """The daemon, `serve` and a report started together on a new database: one creates the schema,
    the others wait for it and open it, none fails with "database is locked"."""
    for attempt in range(6):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.db'}"
        for child in _open_at_once(url, tmp_path / f"go-{attempt}", 4):
            assert child.returncode == 0, child.stderr[-2000:]
        assert migrate.schema_status(make_engine(url)) == "current"


@pytest.mark.postgres
def test_processes_creating_one_new_postgresql_schema_at_once_all_open_it(pg_schema_url: str, tmp_path: Path) -> None:
    for child in _open_at_once(pg_schema_url, tmp_path / "go", 4):
        assert child.returncode == 0, child.stderr[-2000:]
    assert migrate.schema_status(make_engine(pg_schema_url)) == "current"
