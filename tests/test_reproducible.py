"""Same articles, same story versions, same decisions: whatever the order they arrive in, however
often the process is killed on the way, however many daemons share the work.

One news site (the bundled demo articles and the fixture stories' articles, every page slow to
arrive) is stored by real `monitor` processes in several ways; every way must end with the same
matches, scores, logits and model versions, and the same near misses, as one uninterrupted pass.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _httpserver import LocalServer, serve_site
from sitegen import load_articles, make_article, render_site
from sqlalchemy import text
from test_cli_e2e import dump_toml

from monitor.db.engine import make_engine

ROOT = Path(__file__).resolve().parent.parent
STORIES = Path(__file__).parent / "data" / "stories"
PAGE_DELAY = 0.1
DERIVED = {"heist": ("crime", "2022-11-17", "2023-06-30"), "dam": ("disaster", "2024-04-14", "2024-09-30")}

Decisions = dict[str, dict[tuple[str, str], tuple[float, float | None, str | None]]]


def _rows() -> list[dict]:
    rows = load_articles()
    for kind in ("crime", "disaster", "politics"):
        for line in (STORIES / f"{kind}-articles.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows.append(make_article(r["id"], outlet=f"{kind.title()} Post", feed=f"{kind}-post",
                                     path=f"/{r['published'][:10].replace('-', '/')}/{r['id']}", title=r["title"],
                                     published=r["published"], summary=r["summary"] or r["title"], body=r["body"],
                                     lang=r["lang"]))
    return rows


def _serve(server: LocalServer, root: Path) -> list[str]:
    feeds = render_site(_rows(), root, server.url("").rstrip("/"))
    serve_site(server, root, page_delay=PAGE_DELAY)
    return feeds


def _config(folder: Path, db_url: str, feeds: list[str], plugins: Path, **schedule: str) -> Path:
    cfg = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    cfg["database"]["url"] = db_url
    cfg["fetch"]["allow_private_addresses"] = True
    cfg["feeds"] = [{"url": u} for u in feeds]
    cfg.setdefault("plugins", {})["paths"] = [str(plugins)]
    cfg["stories"] = [*cfg.get("stories", []), *({"id": story} for story in DERIVED)]
    cfg["schedule"].update(schedule)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "monitor.toml"
    path.write_text(dump_toml(cfg), encoding="utf-8")
    return path


def _monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), *args], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, NO_COLOR="1"), cwd=config.parent)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    return p


def _derive(plugins: Path, any_config: Path) -> None:
    for story, (kind, start, end) in DERIVED.items():
        _monitor(any_config, "stories", "add", story, "--reference", str(STORIES / f"{kind}-reference.txt"),
                 "--start", start, "--end", end, "--output", str(plugins))


def decisions(db_url: str) -> Decisions:
    """Every match and near miss, keyed by (story, URL path): (score, logit, model version)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            out: Decisions = {}
            for table in ("matches", "near_misses"):
                rows = conn.execute(text(f"SELECT t.story_id, a.url, t.score, t.logit, t.model_version FROM {table} t "
                                         "JOIN articles a ON a.id = t.article_id"))
                out[table] = {(story, urlsplit(url).path): (round(score, 4), logit, version)
                              for story, url, score, logit, version in rows}
            out["articles"] = {(urlsplit(u).path, ""): (0.0, None, None)
                               for u in conn.execute(text("SELECT url FROM articles")).scalars()}
            return out
    finally:
        engine.dispose()


def _count(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM articles")).scalar_one()
    except Exception:
        return 0      # the schema is not there yet
    finally:
        engine.dispose()


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NO_COLOR="1"), cwd=config.parent)


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The served site, the derived stories' plugin folder, and the decisions of one uninterrupted pass."""
    tmp = tmp_path_factory.mktemp("reproducible")
    with LocalServer() as server:
        feeds = _serve(server, tmp / "site")
        plugins = tmp / "plugins"
        url = f"sqlite:///{tmp / 'reference.db'}"
        config = _config(tmp / "reference", url, feeds, plugins)
        _derive(plugins, config)
        _monitor(config, "run", "--once")
        yield server, feeds, plugins, decisions(url), tmp


def test_the_reference_pass_matches_and_keeps_near_misses(news: Any) -> None:
    _, _, _, reference, _ = news
    stories = {story for story, _ in reference["matches"]}
    assert {"trump-kim-summit-2018", "heist", "dam"} <= stories, stories
    assert reference["near_misses"], "no near miss kept"
    assert all(version for _, _, version in reference["matches"].values())
    assert len(reference["articles"]) == len(_rows())


def test_order_of_arrival_changes_nothing(news: Any, tmp_path: Path) -> None:
    _, feeds, plugins, reference, _ = news
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    # One feed a pass, the last feed first; then the same in a shuffled order on another database.
    for n, order in enumerate((feeds[::-1], random.Random(7).sample(feeds, len(feeds)))):
        url = f"sqlite:///{tmp_path / f'order-{n}.db'}"
        for feed in order:
            _monitor(_config(tmp_path / f"order-{n}", url, [feed], plugins), "run", "--once")
        assert decisions(url) == reference


@pytest.mark.parametrize("kill_at", [(0.2, 0.5, 0.8)])
def test_sigkill_at_20_50_80_percent_then_resume_changes_nothing(news: Any, tmp_path: Path,
                                                                  kill_at: tuple[float, ...]) -> None:
    _, feeds, plugins, reference, _ = news
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    config = _config(tmp_path / "killed", url, feeds, plugins)
    total = len(reference["articles"])
    for share in kill_at:
        proc = _start(config, "run", "--once")
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and _count(url) < int(share * total) and proc.poll() is None:
                time.sleep(0.02)
            assert proc.poll() is None, "the pass ended before the kill point: make the pages slower"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()  # type: ignore[union-attr]
        assert _count(url) >= int(share * total)
    _monitor(config, "run", "--once")
    assert decisions(url) == reference


@pytest.mark.postgres
@pytest.mark.parametrize("daemons", [1, 2, 3])
def test_one_two_or_three_daemons_on_postgresql_decide_alike(news: Any, tmp_path: Path, pg_schema_url: str,
                                                             daemons: int) -> None:
    _, feeds, plugins, reference, _ = news
    configs = [_config(tmp_path / f"d{n}", pg_schema_url, feeds, plugins, tick="1s", lease="10s")
               for n in range(daemons)]
    _monitor(configs[0], "db", "upgrade")
    procs = [_start(c, "run") for c in configs]
    try:
        total = len(reference["articles"])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and _count(pg_schema_url) < total:
            time.sleep(0.2)
        # Every article is stored with its matches and near misses in one transaction, so all the
        # decisions are in; SIGTERM lets each daemon finish what it is writing before it exits.
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        errors = []
        for proc in procs:
            try:
                errors.append(proc.communicate(timeout=30)[1][-3000:])
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert [proc.returncode for proc in procs] == [0] * daemons, errors   # stopped cleanly, not cut off
    assert decisions(pg_schema_url) == reference


def test_stories_test_eval_backfill_and_the_daemon_agree_on_every_article(news: Any, tmp_path: Path) -> None:
    _, feeds, plugins, reference, tmp = news
    config = _config(tmp / "reference", f"sqlite:///{tmp / 'reference.db'}", feeds, plugins)
    stored = [json.loads(line) for line in _monitor(config, "export", "articles").stdout.splitlines()]
    matched = {(story, path) for story, path in reference["matches"]}
    for story in ("trump-kim-summit-2018", *DERIVED):
        # eval, on the stored text labelled with the daemon's own decisions: it must agree on every row.
        corpus = tmp_path / f"{story}.jsonl"
        corpus.write_text("".join(json.dumps({**a, "id": str(n), "category": "stored",
                                              "label": "on" if (story, urlsplit(a["canonical_url"]).path) in matched else "off"})
                                  + "\n" for n, a in enumerate(stored)), encoding="utf-8")
        out = _monitor(config, "eval", "--corpus", str(corpus), "--story", story).stdout
        assert "misses: 0" in out and "false alarms: 0" in out, out
        # backfill with the same version re-decides nothing.
        out = _monitor(config, "stories", "backfill", story, "--dry-run", "--keep-version").stdout
        assert "would add 0 matches, would remove 0" in out, out
    # stories test fetches and extracts the page as the daemon did, and gives the same score.
    for (story, path), (score, _logit, _version) in sorted(reference["matches"].items())[::4]:
        page = next(a["url"] for a in stored if urlsplit(a["canonical_url"]).path == path)
        out = _monitor(config, "stories", "test", story, page).stdout
        assert f"-> score {score:.3f}" in out and ": MATCH" in out, out
