"""Configuration: typed values, defaults, and errors that name the key and the line."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from monitor.config import Settings, describe_keys, load_settings, parse_duration, settings_from_dict
from monitor.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_enables_the_summit_story() -> None:
    settings = load_settings(ROOT / "config.example.toml")
    assert len(settings.feeds) >= 10
    assert all(f.url.startswith("https://") for f in settings.feeds)
    ids = {t["id"]: t for t in settings.stories}
    assert ids["trump-kim-summit-2018"].get("enabled", True) is True
    assert settings.fetch.allow_private_addresses is False


def test_example_config_stays_valid_when_the_contract_keys_are_replaced(tmp_path: Path) -> None:
    data = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    data["database"]["url"] = "sqlite:///elsewhere.db"
    data["fetch"]["allow_private_addresses"] = True
    data["feeds"] = [{"url": "http://127.0.0.1:8000/feed.xml"}]
    settings = settings_from_dict(data, path=tmp_path / "x.toml")
    assert settings.database_url == f"sqlite:///{(tmp_path / 'elsewhere.db').resolve()}"
    assert [f.url for f in settings.feeds] == ["http://127.0.0.1:8000/feed.xml"]


def test_defaults_without_a_file() -> None:
    s = Settings()
    assert s.database.url == "sqlite:///monitor.db"
    assert s.fetch.per_host >= 1 and s.schedule.interval == 900


def test_durations_accept_units_and_numbers(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[schedule]\ninterval = "2h"\ntick = 45\n[fetch]\ntotal_timeout = "90s"\n'))
    assert (s.schedule.interval, s.schedule.tick, s.fetch.total_timeout) == (7200, 45, 90)
    assert parse_duration("1d") == 86400
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///x.db"\n\n[fetch]\nallow_private_addresses = true\ntimeout = 3\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert str(e.value).startswith(f"{path.resolve()}:6: unknown key fetch.timeout")
    assert "total_timeout" in str(e.value)          # says what is allowed


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":1: unknown key 'fecth'"):
        load_settings(write(tmp_path, "[fecth]\nx = 1\n"))


@pytest.mark.parametrize("text, fragment", [
    ('[fetch]\nconcurrency = "many"\n', r":2: fetch.concurrency: expected a whole number"),
    ("[fetch]\nallow_private_addresses = 1\n", r":2: fetch.allow_private_addresses: expected true or false"),
    ('[schedule]\ninterval = "often"\n', r":2: schedule.interval: 'often' is not a duration"),
    ('[log]\nlevel = "loud"\n', r":2: log.level: expected one of"),
    ('[[feeds]]\nurl = "ftp://example.org/feed"\n', r":2: feeds\[0\].url must be an http\(s\) URL"),
    ('[[feeds]]\ntitle = "no url"\n', r"feeds\[0\]: missing required key 'url'"),
    ('[[feeds]]\nurl = "https://example.org/rss"\nevery = "1h"\n', r":3: unknown key feeds\[0\].every"),
    ("[database]\nurl = 5\n", r":2: database.url: expected a string"),
    ("database = 3\n", r"\[database\] must be a table"),
])
def test_mistyped_values_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(write(tmp_path, text))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[fetch\n"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "absent.toml")


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    s = load_settings(write(sub, '[database]\nurl = "sqlite:///data/m.db"\n'))
    assert s.database_url == f"sqlite:///{(sub / 'data' / 'm.db').resolve()}"
    s = load_settings(write(sub, '[database]\nurl = "postgresql://u@h/db"\n'))
    assert s.database_url == "postgresql://u@h/db"


def test_duplicate_feeds_are_one_feed(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[[feeds]]\nurl = "https://a.example/rss"\n[[feeds]]\nurl = "https://a.example/rss"\n'))
    assert len(s.feeds) == 1


def test_every_key_is_documented_in_the_example_config() -> None:
    """A setting that the example config does not mention is a setting nobody finds."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for key, _default, help in describe_keys():
        assert help, f"{key} has no help text"
        section, _, name = key.partition(".")
        if section in ("feeds[]", "stories[]"):
            continue
        if section.endswith("[]"):     # an array of tables, shown commented out: # [[alerts]]
            header = rf"^#?\s*\[\[{re.escape(section[:-2])}\]\]"
        else:
            header = rf"^\[{re.escape(section)}\]"
        assert re.search(header, text, re.M), f"[{section}] missing from config.example.toml"
        assert re.search(rf"^#?\s*{re.escape(name)}\s*=", text, re.M), f"{key} missing from config.example.toml"


def test_every_section_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for key, _d, _h in describe_keys():
        section = key.split(".")[0].rstrip("[]")
        assert f"[{section}]" in readme or f"[[{section}]]" in readme, f"README does not mention [{section}]"


# ------------------------------------------------------------------------------- [[stories]]

_TWO_STORIES = """\
[[stories]]
id = "harbour"
title = "Harbour strike"
threshold = 0.5
rules = [{{ name = "title" }}]
facets = {{ strike = ["strike"] }}

[[stories]]
id = "dockers"
title = "Dockers"
{line}
facets = {{ strike = ["strike"] }}

[[stories.rules]]
name = "title"
{rule}
"""


def _stories_error(tmp_path: Path, line: str = "", rule: str = "") -> tuple[str, str]:
    from monitor.config import configured_stories

    path = write(tmp_path, _TWO_STORIES.format(line=line, rule=rule))
    with pytest.raises(ConfigError) as raised:
        configured_stories(load_settings(path))
    return str(raised.value.where), str(raised.value)


@pytest.mark.parametrize(("line", "rule", "error_line", "message"), [
    ("colour = 1", "", 11, "key 'colour' is not a known story key"),           # checked on loading
    ("threshold = 2", "", 11, "key 'threshold' must be in [0, 1]"),             # not the first story's threshold
    ("start = \"2018-13-01\"", "", 11, "is not an ISO 8601 date"),
    ("", "weight = \"heavy\"", 14, "key 'weight' must be a number"),             # in [[stories.rules]]
    ("", "params = { floor = 3 }", 14, "rule 'title'"),
    ("", "", None, ""),
])
def test_stories_errors_name_the_file_and_line(tmp_path: Path, line: str, rule: str, error_line: int | None,
                                               message: str) -> None:
    if error_line is None:   # the file as written is valid
        from monitor.config import configured_stories

        stories = configured_stories(load_settings(write(tmp_path, _TWO_STORIES.format(line="", rule=""))))
        assert [s.id for s in stories] == ["harbour", "dockers"]
        return
    where, text = _stories_error(tmp_path, line, rule)
    assert where == f"{tmp_path / 'monitor.toml'}:{error_line}"
    assert message in text


@pytest.mark.parametrize(("text", "error_line", "message"), [
    ('[[stories]]\nid = "a"\n\n[[stories]]\ntitle = "no id"\n', 4, "stories[1]: `id` must be a non-empty string"),
    ('[[stories]]\nid = "a"\n\n[[stories]]\nid = "a"\n', 5, "story 'a' is configured twice"),
    ('[[stories]]\nid = "trump-kim-summit-2018"\nterms = { kim = 1.0 }\n', 3, "cannot be set on a plugin story"),
    ('stories = ["a"]\n', 1, "stories must be [[stories]] tables"),
])
def test_stories_shape_is_checked_with_the_rest_of_the_file(tmp_path: Path, text: str, error_line: int,
                                                            message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.where == f"{path.resolve()}:{error_line}"
    assert message in str(raised.value)
