"""The extras: without `serve` and `postgres` installed, the contract's commands (`run`, `report`,
`export`, `stories add`) work as before, and `monitor serve` or a PostgreSQL URL stop with one line
saying what to install, never a traceback.

"Not installed" is made real in a child interpreter: a finder placed first on sys.meta_path refuses
the extras' modules, as an environment without them would, before anything of the monitor is imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sitegen import load_articles, serve_articles
from test_cli_e2e import DEMO_ON, SUMMIT, ids_by_url, make_config

from monitor.extras import EXTRAS

ROOT = Path(__file__).resolve().parent.parent
# What the extras install, with the packages those bring in that the core must not need either.
REFUSED = sorted({m for modules in EXTRAS.values() for m in modules} | {"starlette", "multipart", "psycopg_binary"})

_CHILD = """
import importlib.abc, sys

REFUSED = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
        return None

sys.meta_path.insert(0, Refuse())
from monitor.cli import main

code = main(sys.argv[2:])
leaked = sorted(m for m in sys.modules if m.partition(".")[0] in REFUSED)
assert not leaked, leaked
sys.exit(code)
"""


def without_extras(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    return subprocess.run([sys.executable, "-c", _CHILD, ",".join(REFUSED), *argv], capture_output=True, text=True,
                          timeout=180, env=env, cwd=cwd)


def test_the_finder_refuses_what_the_extras_install(tmp_path: Path) -> None:
    # The premise of the tests below: in the child, importing an extra's module fails.
    probe = _CHILD.replace("from monitor.cli import main", "import fastapi")
    p = subprocess.run([sys.executable, "-c", probe, ",".join(REFUSED)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "refused by the test" in p.stderr


def test_run_and_report_need_no_extra(tmp_path: Path) -> None:
    with serve_articles(tmp_path) as (site, feeds):
        config = make_config(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", feeds)
        run = without_extras("--config", str(config), "run", "--once", cwd=config.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and f"feeds {len(feeds)} ok" in run.stderr
    report = without_extras("--config", str(config), "report", "--format", "json",
                            "--since", "2017-01-01", "--until", "2020-01-01", cwd=config.parent)
    assert report.returncode == 0, report.stderr[-3000:]
    story = next(s for s in json.loads(report.stdout)["stories"] if s["id"] == SUMMIT)
    by_url = ids_by_url(load_articles(), site.base_url)
    assert {by_url[m["url"]] for m in story["matches"]} == DEMO_ON
    export = without_extras("--config", str(config), "export", "articles", cwd=config.parent)
    assert export.returncode == 0, export.stderr[-3000:]
    assert len(export.stdout.splitlines()) == len(load_articles())


def test_stories_add_needs_no_extra(tmp_path: Path) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", [])
    added = without_extras("--config", str(config), "stories", "add", "flood", "--reference",
                           str(ROOT / "tests" / "data" / "stories" / "disaster-reference.txt"), "--start", "2024-04-14",
                           "--end", "2024-09-30", "--output", str(tmp_path / "stories"), cwd=config.parent)
    assert added.returncode == 0, added.stderr[-3000:]
    assert (tmp_path / "stories" / "flood.toml").is_file()


def test_serve_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    config = make_config(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", [])
    p = without_extras("--config", str(config), "serve", "--port", "1", cwd=config.parent)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    error = [line for line in p.stderr.splitlines() if line.startswith("monitor: error:")]
    assert len(error) == 1, p.stderr
    assert "`monitor serve` needs the 'serve' extra" in error[0]
    assert "pip install 'monitor[serve]'" in error[0]


@pytest.mark.parametrize("where", ["config", "--database"])
def test_postgresql_without_its_extra_says_what_to_install(tmp_path: Path, where: str) -> None:
    url = "postgresql://monitor@127.0.0.1:1/monitor"   # never reached: the check comes first
    if where == "config":
        config = make_config(tmp_path, url, [])
        p = without_extras("--config", str(config), "run", "--once", cwd=config.parent)
    else:
        config = make_config(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", [])
        p = without_extras("--config", str(config), "--database", url, "report", cwd=config.parent)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    error = [line for line in p.stderr.splitlines() if line.startswith("monitor: error:")]
    assert len(error) == 1, p.stderr
    assert "needs the 'postgres' extra (psycopg not installed): pip install 'monitor[postgres]'" in error[0]
