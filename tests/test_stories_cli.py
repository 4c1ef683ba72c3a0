"""`monitor stories add / show / test / backfill` through a real `monitor` process."""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from _httpserver import LocalServer

from monitor._types import Article
from monitor.db.store import ArticleWrite, Store
from monitor.matching.profile import DERIVED_SIMILARITY_WEIGHT

ARTICLES = Path(__file__).parent / "data" / "articles"
SUMMIT = "trump-kim-summit-2018"
_HARBOUR = ("Dockers walk out as harbour strike shuts Eastwick port",
            "Dockers at the Port of Eastwick walked out on Monday, and the harbour board said no ship would be "
            "unloaded while the strike lasts.\n\n"
            "Jane Doe, who leads the dockers' union, said the strike would go on until the harbour board "
            "withdrew its plan to cut night shifts at Eastwick.\n\n"
            "The harbour board called the strike reckless. Shipping lines began diverting vessels to other ports, "
            "and the strike at Eastwick could cost the region millions a day, traders said.\n\n"
            "Talks between Jane Doe and the harbour board are due on Thursday.")


def monitor(config: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), *args], capture_output=True,
                       text=True, timeout=120, env=env, cwd=config.parent)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == code, f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    return p


def _config(tmp_path: Path, db_url: str = "", **extra: str) -> Path:
    lines = [f'[database]\nurl = "{db_url or "sqlite:///monitor.db"}"', "[fetch]\nallow_private_addresses = true",
             *extra.values()]
    path = tmp_path / "monitor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fixture(name: str) -> dict:
    return json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))


def test_add_from_a_file_then_show_and_refuse_to_overwrite(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "strike.txt").write_text(f"{_HARBOUR[0]}\n{_HARBOUR[1]}\n", encoding="utf-8")
    out = monitor(config, "stories", "add", "harbour-strike", "--reference", "strike.txt",
                  "--start", "2021-03-01", "--end", "2021-04-30").stdout
    written = tmp_path / "plugins" / "harbour-strike.toml"
    assert f"wrote {written}" in out
    assert "is not a plugin folder yet" in out and 'paths = ["' in out      # plugins/ is not searched yet
    assert '[[stories]]\n  id = "harbour-strike"' in out
    table = tomllib.loads(written.read_text(encoding="utf-8"))
    assert table["title"] == _HARBOUR[0]
    assert table["reference"]["path"] == str(tmp_path / "strike.txt")
    assert {"strike", "harbour", "dockers"} <= set(table["terms"])
    assert table["start"].startswith("2021-03-01") and table["rules"][0]["name"] == "window"

    # Once the folder is a plugin folder, the story can be shown before it is enabled.
    config = _config(tmp_path, plugins='[plugins]\npaths = ["plugins"]')
    shown = monitor(config, "stories", "show", "harbour-strike").stdout
    assert shown.startswith(f"harbour-strike: {_HARBOUR[0]}")
    for part in ("origin      plugins/harbour-strike.toml", "window      2021-03-01", "reference", f"weight {DERIVED_SIMILARITY_WEIGHT:g}",
                 "anchors (an article is scored only when it has 2", "harbour, eastwick, dockers, strike", "names:", "Jane Doe", "top terms", "text from"):
        assert part in shown, part

    refused = monitor(config, "stories", "add", "harbour-strike", "--reference", "strike.txt", code=2)
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    # A curator's notes in the file survive its replacement.
    curated = written.read_text(encoding="utf-8").replace("[terms]", "# Checked by hand on 2021-03-05.\n[terms]")
    written.write_text(curated.replace('title = "', '# The desk asked for a shorter title.\ntitle = "'), encoding="utf-8")
    monitor(config, "stories", "add", "harbour-strike", "--reference", "strike.txt", "--force",
            "--title", "Eastwick strike")
    rewritten = written.read_text(encoding="utf-8")
    assert tomllib.loads(rewritten)["title"] == "Eastwick strike"
    assert "# The desk asked for a shorter title.\ntitle = \"Eastwick strike\"" in rewritten
    assert "# Checked by hand on 2021-03-05.\n[terms]" in rewritten
    assert tomllib.loads(rewritten)["terms"] == table["terms"]


@pytest.mark.parametrize(("args", "message"), [
    (["Bad ID", "--reference", "x.txt"], "story ID 'Bad ID' must be lower-case"),
    (["ok", "--reference", "missing.txt"], "neither an http(s) URL nor an existing file"),
    (["ok", "--reference", "ftp://example.org/a"], "is not an http(s) URL"),
    (["ok", "--reference", "empty.txt"], "holds no article text"),
    (["ok", "--reference", "strike.txt", "--query", "strike AND (dockers"], "--query:"),
    ([SUMMIT, "--reference", "strike.txt"], "already exists (plugins/trump-kim-summit-2018.toml)"),
])
def test_add_says_what_is_wrong(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    (tmp_path / "strike.txt").write_text("\n".join(_HARBOUR), encoding="utf-8")
    p = monitor(_config(tmp_path), "stories", "add", *args, code=2)
    assert p.stderr.startswith("monitor: error: ") and message in p.stderr, p.stderr
    assert not (tmp_path / "plugins").exists()


def _page(title: str, body: str, published: str) -> bytes:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n"))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta property="article:published_time" content="{published}"></head><body>'
            f'<nav><a href="/">Home</a> <a href="/world">World</a></nav><article><h1>{html.escape(title)}</h1>'
            f"{paragraphs}</article><footer>Copyright The Test Gazette</footer></body></html>").encode()


def test_add_from_a_url_with_a_query_then_test_articles(tmp_path: Path) -> None:
    revival = _fixture("on-revival")
    routes = {"/strike": (200, {"Content-Type": "text/html; charset=utf-8"},
                          _page(*_HARBOUR, "2021-03-08T09:00:00+00:00")),
              "/revival": (200, {"Content-Type": "text/html"}, _page(revival["title"], revival["body"],
                                                                     revival["published"]))}
    plugins = tmp_path / "my-stories"
    config = _config(tmp_path, plugins=f'[plugins]\npaths = ["{plugins}"]')
    with LocalServer(routes) as server:
        out = monitor(config, "stories", "add", "harbour-strike", "--reference", server.url("/strike"),
                      "--query", "strike* AND (docker* OR harbour)").stdout
        assert "not a plugin folder" not in out
        table = tomllib.loads((plugins / "harbour-strike.toml").read_text(encoding="utf-8"))
        assert table["reference"] == {"url": server.url("/strike")}
        # The page's date centres the window; the nav and footer never reach the profile.
        assert table["start"] == "2021-01-07" and table["end"] == "2021-05-07"
        assert "copyright" not in table["terms"] and "home" not in table["terms"]
        assert {"name": "query", "required": True, "weight": 1.0,
                "params": {"query": "strike* AND (docker* OR harbour)"}} in table["rules"]

        # The story decides on its own reference article ...
        test = monitor(config, "stories", "test", "harbour-strike", server.url("/strike")).stdout
        assert "query" in test and "query matched" in test and ": MATCH" in test
        # ... and the summit story on a page, rule by rule.
        test = monitor(config, "stories", "test", SUMMIT, server.url("/revival")).stdout
        for line in ("window       1.00       0   +0.00  required", "coverage", "reference similarity",
                     "threshold 0.50: MATCH", "best passage: "):
            assert line in test, (line, test)

        # Without permission to fetch private addresses, the SSRF guard refuses.
        guarded = tmp_path / "guarded"
        guarded.mkdir()
        (guarded / "monitor.toml").write_text("", encoding="utf-8")
        p = monitor(guarded / "monitor.toml", "stories", "add", "x", "--reference", server.url("/strike"), code=1)
        assert "cannot fetch the reference" in p.stderr and server.url("/strike") in p.stderr


def test_test_explains_a_non_match(tmp_path: Path) -> None:
    hanoi = _fixture("neg-hanoi-2019")
    (tmp_path / "hanoi.html").write_text(_page(hanoi["title"], hanoi["body"], hanoi["published"]).decode(),
                                         encoding="utf-8")
    out = monitor(_config(tmp_path), "stories", "test", SUMMIT, "hanoi.html").stdout
    assert "published 2019-02-28, outside the story window" in out
    assert "REQUIRED, scored 0: vetoes the match" in out and "score 0.000" in out and ": no match" in out
    missing = monitor(_config(tmp_path), "stories", "test", "no-such-story", "hanoi.html", code=2)
    assert "no story 'no-such-story'" in missing.stderr


def test_backfill_dry_run_then_apply(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    with Store.open(db_url, create=True) as store:
        for path in sorted(ARTICLES.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            when = datetime.fromisoformat(data["published"])
            url = f"https://news.test/{path.stem}"
            article = Article(url=url, final_url=url, feed_url="", title=data["title"], body=data["body"],
                              summary=data["summary"], fetched_at=when, published=when, lang=data["lang"])
            store.store_articles([ArticleWrite(article, [], [])], when)
    dry = monitor(config, "stories", "backfill", SUMMIT, "--dry-run").stdout
    assert f"story {SUMMIT}: 12 stored articles scored; would add 5 matches, would remove 0" in dry
    assert dry.count("  would add: ") == 5 and "score none -> " in dry
    assert "dry run: nothing was written" in dry
    with Store.open(db_url) as store:
        assert store.matches(None, None, None) == []
    applied = monitor(config, "stories", "backfill", SUMMIT).stdout
    assert "added 5 matches, removed 0, refreshed 0" in applied
    with Store.open(db_url) as store:
        assert {m.canonical_url.rsplit("/", 1)[1] for m in store.matches([SUMMIT], None, None)} == {
            "on-aftermath", "on-cancellation-letter", "on-korean", "on-revival", "on-summit-day"}
    since = monitor(config, "stories", "backfill", SUMMIT, "--since", "2018-06-01", "--until", "2018-07-01",
                    "--dry-run").stdout
    assert "would add 0 matches, would remove 0" in since
