"""The wheel carries the whole package: every module, template, static file and data file under
monitor/, and the top-level alembic/ (migrations) and plugins/ folders as monitor._alembic and
monitor._plugins. Built for real, offline: setuptools' own build hook on a copy of the tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The top-level folders a wheel carries, and where in the wheel they go (pyproject's package-dir).
FOLDERS = {"monitor": "monitor", "alembic": "monitor/_alembic", "plugins": "monitor/_plugins"}
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def source_files() -> set[str]:
    """Every file of the package in this tree, named as it must appear inside the wheel."""
    files = set()
    for folder, inside in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{inside}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    # A copy, so that the build leaves nothing (build/, *.egg-info) in the working tree and no stale
    # build/ folder of an earlier build can fill in what the configuration leaves out.
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=_SKIPPED)
    out = tmp_path_factory.mktemp("wheel")
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    p = subprocess.run([sys.executable, "-c", build], cwd=tree, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    wheel = out / p.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def test_the_wheel_carries_every_file_of_the_package(wheel_files: set[str]) -> None:
    expected = source_files()
    assert expected - wheel_files == set()
    assert wheel_files - expected == set()


def test_the_wheel_carries_the_migrations_templates_and_data() -> None:
    # What source_files() walks, checked against the kinds of files the monitor reads at run time,
    # so that the test above cannot pass on a tree it fails to see.
    files = source_files()
    assert any(f.startswith("monitor/_alembic/versions/") and f.endswith(".py") for f in files)
    assert "monitor/_alembic/env.py" in files and "monitor/_alembic/script.py.mako" in files
    assert any(f.startswith("monitor/_plugins/") and f.endswith(".toml") for f in files)
    assert any(f.startswith("monitor/web/templates/") for f in files)
    assert any(f.startswith("monitor/web/static/") for f in files)
    assert "monitor/matching/background_df.json" in files


def test_extras_install_what_their_commands_import() -> None:
    # monitor.extras checks these modules; pyproject's extras must install them.
    from monitor.extras import EXTRAS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    distributions = {"fastapi_offline": "fastapi-offline", "python_multipart": "python-multipart"}
    for extra, modules in EXTRAS.items():
        names = {requirement.split(">")[0].split("[")[0].split("<")[0].lower() for requirement in optional[extra]}
        assert {distributions.get(m, m) for m in modules} <= names, extra
    assert "monitor[serve,postgres,reader]" in optional["test"]


def test_the_default_install_carries_serve_and_postgres() -> None:
    # Outside tools install with `pip install -e .` (CONTRACT.md) and then serve the API or use
    # PostgreSQL: the default install must bring what the `serve` and `postgres` extras name.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    default = set(project["dependencies"])
    for extra in ("serve", "postgres"):
        missing = set(project["optional-dependencies"][extra]) - default
        assert not missing, f"the {extra} extra's {sorted(missing)} are not in the default install"
