"""The README is the front door: what it says must be true and complete."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from monitor._types import Article
from monitor.cli import build_parser
from monitor.matching import Matcher, list_rules, load_stories

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_built_in_rule_is_documented() -> None:
    for rule in list_rules():
        assert f"| `{rule.name}` |" in README, f"rule {rule.name!r} missing from the README's rule table"


def test_every_command_is_in_the_tour() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert re.search(rf"monitor( --config \S+)? {name}\b", README), f"`monitor {name}` missing from the README"


def test_the_two_commands_are_the_ones_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in README.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    assert test_command.strip() in ci
    assert any("config.example.toml run" in line and line.startswith("python3 -m venv") for line in README.splitlines())


def test_the_readme_rule_plugin_example_works(tmp_path: Path) -> None:
    code = re.search(r"```python\n(# my_plugins/paywall.py\n.*?)```", README, re.S).group(1)
    (tmp_path / "paywall.py").write_text(code, encoding="utf-8")
    rules = {r.name: r for r in list_rules(plugin_dirs=[tmp_path])}
    assert rules["paywalled"].version == "1" and "paywall.py" in rules["paywalled"].origin
    story = {"id": "pay", "title": "Paywalls", "rules": [{"name": "paywalled", "weight": 8.0, "required": True}],
             "bias": -4.0}
    (loaded,) = load_stories([story], plugin_dirs=[tmp_path])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    hit = Article(url="https://x.example/a", final_url="https://x.example/a", feed_url="https://x.example/rss",
                  title="News", body="The start of it.\n\nSubscribe to continue reading.", fetched_at=now)
    miss = Article(url="https://x.example/b", final_url="https://x.example/b", feed_url="https://x.example/rss",
                   title="News", body="A whole free article.", fetched_at=now)
    matcher = Matcher([loaded])
    assert [r.matched for r in matcher.match(hit) if r.story_id == "pay"] == [True]
    assert not any(r.matched for r in matcher.match(miss))
