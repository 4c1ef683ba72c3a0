"""The stumbles a new user met (issue 15), each as the user met it: a real `monitor` process on
real files. Every test here failed before its fix."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _httpserver import LocalServer
from test_cli_e2e import make_config, monitor
from test_report import OTHER, digest, match

from monitor.cli import FEED_ERRORS_EXIT, build_parser
from monitor.report import render
from monitor.wording import plural

ROOT = Path(__file__).resolve().parent.parent
DEMO_ARTICLES = ROOT / "monitor" / "demo" / "articles.jsonl"


def run_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`monitor ARGS` in `folder` with no --config and no $MONITOR_CONFIG (unless `env` gives one)."""
    environ = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"} | {"NO_COLOR": "1"} | (env or {})
    p = subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=120,
                       cwd=folder, env=environ)
    assert "Traceback" not in p.stderr, p.stderr
    return p


# -- 1. eval --corpus: bad rows are named by their line ---------------------------------------

@pytest.mark.parametrize("rows, line, message", [
    ([{"id": "a", "label": "on"}, {"id": "b", "title": "no label"}], 2, "missing key 'label'"),
    ([{"label": "off", "title": "no id"}], 1, "missing key 'id'"),
    ([{"id": "a", "label": "on"}, "{not json", {"id": "c", "label": "off"}], 2, "not a JSON object"),
    ([{"id": "a", "label": "maybe"}], 1, "label must be one of on, brief, off"),
    ([{"id": "a", "label": "on"}, {"id": "a", "label": "off"}], 2, "id 'a' repeats line 1"),
    ([["a", "list"]], 1, "each line must be a JSON object"),
])
def test_eval_refuses_a_bad_corpus_row_with_its_line(tmp_path: Path, sqlite_url: str, rows: list, line: int,
                                                     message: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    p = monitor(config, "eval", "--corpus", str(corpus), check=False)
    assert p.returncode == 2, p.stderr
    assert f"{corpus}:{line}: {message}" in p.stderr


def test_eval_on_the_demo_articles_names_the_missing_label(tmp_path: Path, sqlite_url: str) -> None:
    """The user's first try: the demo's articles carry no labels."""
    config = make_config(tmp_path, sqlite_url, [])
    p = monitor(config, "eval", "--corpus", str(DEMO_ARTICLES), check=False)
    assert p.returncode == 2 and f"{DEMO_ARTICLES}:1: missing key 'label'" in p.stderr
    assert "docs/eval-corpus.md" in p.stderr


def test_eval_help_points_to_a_corpus_format_the_repository_has() -> None:
    text = subprocess.run([sys.executable, "-m", "monitor", "eval", "--help"], capture_output=True, text=True).stdout
    assert "LABELS.md" not in text
    documents = set(re.findall(r"docs/[\w.-]+\.md", text))
    assert documents == {"docs/eval-corpus.md"} and (ROOT / "docs" / "eval-corpus.md").is_file()
    doc = (ROOT / "docs" / "eval-corpus.md").read_text(encoding="utf-8")
    assert all(f"`{key}`" in doc for key in ("id", "label", "title", "body", "published", "lang", "category"))


def test_eval_still_scores_a_good_corpus(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    corpus = tmp_path / "corpus.jsonl"
    rows = [json.loads(line) for line in DEMO_ARTICLES.read_text(encoding="utf-8").splitlines()[:14]]
    corpus.write_text("".join(json.dumps({**r, "label": "on" if i < 12 else "off"}) + "\n"
                              for i, r in enumerate(rows)), encoding="utf-8")
    p = monitor(config, "eval", "--corpus", str(corpus))
    assert "12 on, 2 off, 0 brief" in p.stdout


# -- 4. which configuration is in use ------------------------------------------------------------

def test_without_any_configuration_the_commands_say_so(tmp_path: Path) -> None:
    p = run_in(tmp_path, "report", "--format", "json")
    assert p.returncode == 0
    assert "no configuration found (no --config, no $MONITOR_CONFIG, no ./monitor.toml)" in p.stderr
    assert f"database sqlite:///{tmp_path.resolve()}/monitor.db" in p.stderr
    assert json.loads(p.stdout)["stories"] == []                 # stdout stays the contract's JSON
    assert "no story is enabled" in p.stderr


def test_an_implicit_configuration_is_named(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").write_text('[database]\nurl = "sqlite:///here.db"\n', encoding="utf-8")
    p = run_in(tmp_path, "config", "check")
    assert p.returncode == 0 and f"configuration {tmp_path.resolve()}/monitor.toml (found in the working folder)" in p.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = run_in(elsewhere, "config", "check", env={"MONITOR_CONFIG": str(tmp_path / "monitor.toml")})
    assert "($MONITOR_CONFIG)" in p.stderr
    p = run_in(elsewhere, "--config", str(tmp_path / "monitor.toml"), "config", "check")
    assert "configuration" not in p.stderr and "no configuration" not in p.stderr


# -- 5. config check refuses what run would fail on ----------------------------------------------

@pytest.mark.parametrize("text, line, message", [
    ('[[feeds]]\nurl = "not-a-url"\n', 2, "feeds[0].url must be an http(s) URL, got 'not-a-url'"),
    ('[database]\nurl = "mysql://u@localhost/x"\n', 2, "unsupported database mysql://u@localhost/x"),
    ('[database]\n\nurl = "sqlite:///missing/folder/m.db"\n', 3,
     "the folder of the SQLite database sqlite:///missing/folder/m.db does not exist"),
    ('[database]\nurl = "not a url at all"\n', 2, "is not a database URL"),
])
def test_config_check_refuses_what_run_would_fail_on(tmp_path: Path, text: str, line: int, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    for command in (["config", "check"], ["run", "--once"]):
        p = monitor(config, *command, check=False)
        assert p.returncode == 2, p.stderr
        assert f"{config}:{line}: " in p.stderr and message in p.stderr


def test_database_errors_show_the_url_as_written(tmp_path: Path) -> None:
    config = tmp_path / "pg.toml"
    config.write_text('[database]\nurl = "postgresql://nobody:secret@127.0.0.1:1/none"\n', encoding="utf-8")
    p = monitor(config, "run", "--once", check=False)
    assert p.returncode == 1
    assert "postgresql://nobody:***@127.0.0.1:1/none" in p.stderr
    assert "psycopg" not in p.stderr.split("connection failed")[0] and "secret" not in p.stderr
    # and errors raised later, from the engine's own URL, name the database the same way
    from sqlalchemy import make_url

    from monitor.db.engine import masked_url
    assert masked_url(make_url("postgresql+psycopg://nobody:secret@db.example/none")) == \
        "postgresql://nobody:***@db.example/none"


# -- 6. an unknown story id ----------------------------------------------------------------------

def test_an_unknown_story_id_is_named_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "stories.toml"
    config.write_text('[database]\nurl = "sqlite:///m.db"\n\n[[stories]]\nid = "trump-kim-summit-2018"\n\n'
                      '[[stories]]\nid = "no-such-story"\n', encoding="utf-8")
    p = monitor(config, "config", "check", check=False)
    assert p.returncode == 2
    assert f"{config}:8: no story 'no-such-story'; known: trump-kim-summit-2018" in p.stderr
    assert "title" not in p.stderr


# -- 8. run --once --fail-on-errors -------------------------------------------------------------

def test_fail_on_errors_makes_a_failed_feed_visible_to_scripts(tmp_path: Path, sqlite_url: str) -> None:
    with LocalServer() as server:
        server.routes["/gone.xml"] = (404, {"Content-Type": "text/plain"}, b"gone")
        config = make_config(tmp_path, sqlite_url, [server.url("/gone.xml")])
        plain = monitor(config, "run", "--once", check=False)
        strict = monitor(config, "run", "--once", "--fail-on-errors", check=False)
    assert plain.returncode == 0                                  # the CONTRACT's default
    assert strict.returncode == FEED_ERRORS_EXIT == 3
    assert "1 feed of 1 failed (--fail-on-errors)" in strict.stderr


def test_fail_on_errors_passes_a_pass_without_failures(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, [])
    assert monitor(config, "run", "--once", "--fail-on-errors").returncode == 0
    p = monitor(config, "run", "--fail-on-errors", check=False)
    assert p.returncode == 2 and "--fail-on-errors goes with --once" in p.stderr


# -- 10. the README names nothing a clone lacks -------------------------------------------------

def test_the_readme_names_no_path_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../" not in readme
    for path in re.findall(r"(?<![\w/.])((?:docs|bench|tests|plugins|alembic|monitor)/[\w./-]+\.\w+)", readme):
        assert (ROOT / path).exists(), f"README names {path}, which the repository does not have"


# -- 11. every command and option teaches in --help ----------------------------------------------

def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name}: no line in the list of commands")
                if not sub.description:
                    missing.append(f"{path} {name}: no description in its --help")
                missing += _undocumented(sub, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: no help text")
    return missing


def test_every_command_and_option_has_help() -> None:
    assert _undocumented(build_parser(), "monitor") == []


def test_rules_list_has_a_header(tmp_path: Path, sqlite_url: str) -> None:
    lines = monitor(make_config(tmp_path, sqlite_url, []), "rules", "list").stdout.splitlines()
    assert lines[0].split() == ["RULE", "VERSION", "ORIGIN"]
    assert any(line.split()[:1] == ["query"] for line in lines[1:])


# -- 12. the digest's wording -------------------------------------------------------------------

@pytest.mark.parametrize("count, noun, text", [
    (1, "story", "1 story"), (2, "story", "2 stories"), (1, "new match", "1 new match"),
    (0, "new match", "0 new matches"), (1, "error", "1 error"), (3, "error", "3 errors"),
    (2, "entry", "2 entries"), (2, "day", "2 days"), (2, "enabled story", "2 enabled stories"),
])
def test_plural(count: int, noun: str, text: str) -> None:
    assert plural(count, noun) == text


def test_the_timeline_counts_its_peak_in_the_unit_it_draws() -> None:
    """141 days drawn 3 days a character: two matches on each of three days make a peak of 6 per 3 days."""
    matches = [match(f"https://news.example/{i}", minutes=i * 24 * 60, body=f"{OTHER} {i} " * 3)
               for i in range(0, 141, 7)]
    matches += [match(f"https://news.example/busy-{d}-{k}", minutes=(72 + d) * 24 * 60 + k, body=f"{OTHER} b{d}{k} " * 3)
                for d in range(3) for k in range(2)]
    line = next(x for x in render(digest(matches, since=None, until=None), "text").splitlines() if x.startswith("Per "))
    assert line.startswith("Per 3 days, ") and "(peak 6 matches per 3 days, from " in line
    assert "per day" not in line


def test_one_of_everything_reads_in_the_singular() -> None:
    one = render(digest([match("https://news.example/only")], since=None, until=None), "text")
    assert "1 match from 1 outlet; 1 distinct text" in one
    assert not re.search(r"\b1 (matches|outlets|stories|errors)\b", one)


def test_the_html_chart_spans_its_column() -> None:
    html = render(digest([match("https://news.example/a"), match("https://news.example/b", minutes=2 * 24 * 60)],
                         since=None, until=None), "html")
    svg = re.search(r"<svg [^>]*>", html).group(0)
    assert 'width="728"' in svg and 'class="chart"' in svg     # body max-width 760 less its padding
    assert "svg.chart { display: block; width: 100%; height: auto; }" in html
    assert "figure { margin: 8px 0; }" in html                  # no default figure indent


def test_pass_summary_and_feed_list_use_the_singular(tmp_path: Path, sqlite_url: str) -> None:
    with LocalServer() as server:
        server.routes["/gone.xml"] = (500, {"Content-Type": "text/plain"}, b"down")
        config = make_config(tmp_path, sqlite_url, [server.url("/gone.xml")])
        p = monitor(config, "run", "--once")
        listing = monitor(config, "feeds", "list").stdout
    assert "0 new articles" in p.stderr and "0 new matches" in p.stderr
    assert "1 error in a row" in listing and "1 errors" not in listing


# -- 3. demo --keep leaves a configuration to go on with -----------------------------------------

def test_demo_keep_leaves_a_working_configuration_and_the_next_commands(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    p = run_in(tmp_path, "demo", "--keep", str(kept), "--format", "json")
    assert p.returncode == 0, p.stderr[-3000:]
    config = kept / "monitor.toml"
    assert f"monitor --config {config} report" in p.stderr and f"monitor --config {config} serve" in p.stderr
    text = config.read_text(encoding="utf-8")
    assert "lived only while the demo ran" in text                 # its feeds are noted as gone
    # The site is gone now; the configuration still works on what the demo stored, from anywhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = run_in(elsewhere, "--config", str(config), "config", "check")
    assert check.returncode == 0 and "6 feeds, 1 enabled story" in check.stdout
    report = json.loads(run_in(elsewhere, "--config", str(config), "report", "--format", "json").stdout)
    demo = json.loads(p.stdout)
    assert [s["id"] for s in report["stories"]] == ["trump-kim-summit-2018"]
    assert sorted(m["url"] for m in report["stories"][0]["matches"]) == \
        sorted(m["url"] for m in demo["stories"][0]["matches"]) and len(demo["stories"][0]["matches"]) >= 10


# -- long commands: progress on a terminal, quiet in a pipe ---------------------------------------

def _on_a_terminal(folder: Path, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `monitor ARGS` whose stderr is a pseudo-terminal."""
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"} | {"TERM": "xterm", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:          # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=120), out, b"".join(chunks).decode("utf-8", "replace")


def test_long_commands_show_progress_on_a_terminal_and_stay_quiet_in_a_pipe(tmp_path: Path) -> None:
    assert run_in(tmp_path, "demo", "--keep", str(tmp_path / "kept")).returncode == 0
    config = str(tmp_path / "kept" / "monitor.toml")
    backfill = ("--config", config, "stories", "backfill", "trump-kim-summit-2018", "--dry-run")
    status, out, err = _on_a_terminal(tmp_path, *backfill)
    assert status == 0 and "would add" in out
    assert "\r\x1b[Kbackfill trump-kim-summit-2018: scoring the stored articles" in err
    assert err.endswith("\r\x1b[K")                                   # the status line is cleared at the end
    piped = run_in(tmp_path, *backfill)
    assert piped.returncode == 0 and piped.stdout == out
    assert "scoring" not in piped.stderr and "\r" not in piped.stderr
