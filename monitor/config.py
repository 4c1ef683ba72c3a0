"""Configuration: one typed, validated table with defaults and help.

The TOML file is read once into frozen dataclasses. Every key has a type, a default and a
help text (`monitor config keys` prints them); an unknown or mistyped key is an error that
names the key and, where it can be found, the line of the file.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from monitor import USER_AGENT
from monitor.exceptions import ConfigError

DEFAULT_CONFIG_NAME = "monitor.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.I)
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from an int/float or a string like "90s", "15m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15m, 2h or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (examples: 30s, 15m, 2h, 1d)")
        seconds = float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "").lower() or None]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


class Duration(float):
    """Seconds, written in the file as a number or as "15m", "2h"."""


def _key(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = _key("sqlite:///monitor.db", "SQLAlchemy URL. A relative SQLite path is relative to the "
                    "config file's folder. PostgreSQL: postgresql://user@host/db (several daemons may share it).")


@dataclass(frozen=True)
class FetchSettings:
    allow_private_addresses: bool = _key(False, "Fetch feeds and pages on loopback/private addresses "
                                         "(only for local testing; off protects against SSRF).")
    user_agent: str = _key(USER_AGENT, "User-Agent header sent with every request.")
    connect_timeout: Duration = _key(Duration(10), "Time allowed to connect to a server.")
    read_timeout: Duration = _key(Duration(20), "Time allowed between two reads of a response.")
    total_timeout: Duration = _key(Duration(60), "Total deadline of one request, redirects and body included.")
    max_feed_bytes: int = _key(10 * 1024 * 1024, "Largest feed accepted, in bytes after decompression.")
    max_page_bytes: int = _key(5 * 1024 * 1024, "Largest article page accepted, in bytes after decompression.")
    max_redirects: int = _key(5, "Redirects followed before giving up.")
    concurrency: int = _key(16, "Requests in flight at once, overall.")
    per_host: int = _key(2, "Requests in flight at once to one host.")
    page_retries: int = _key(3, "Passes that retry a page whose fetch failed before it is given up.")


@dataclass(frozen=True)
class ScheduleSettings:
    interval: Duration = _key(Duration(900), "How often a feed is checked by default (e.g. 15m).")
    min_interval: Duration = _key(Duration(300), "Never check a feed more often than this.")
    max_interval: Duration = _key(Duration(6 * 3600), "Never wait longer than this between checks.")
    tick: Duration = _key(Duration(30), "How often the daemon looks for due feeds.")


@dataclass(frozen=True)
class ExtractSettings:
    workers: int = _key(0, "Processes extracting article text; 0 = one per CPU core.")


@dataclass(frozen=True)
class LogSettings:
    level: str = _key("info", "Log level: debug, info, warning or error.", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class PluginSettings:
    paths: list[str] = _key([], "Extra folders searched for story (.toml/.py) and rule (.py) plugins, "
                            "relative to the config file. The project's own plugins/ is always searched.")


@dataclass(frozen=True)
class FeedSettings:
    url: str = _key("", "Feed URL (RSS or Atom, http or https).", required=True)
    title: str | None = _key(None, "A name for the feed; defaults to the feed's own title.")
    interval: Duration | None = _key(None, "Check this feed on its own interval instead of schedule.interval.")


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    log: LogSettings = field(default_factory=LogSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    feeds: tuple[FeedSettings, ...] = ()
    # [[stories]] tables are validated by the matching layer, which knows every story's keys.
    stories: tuple[Mapping[str, Any], ...] = ()
    path: Path | None = None            # the file read, if any

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def database_url(self) -> str:
        """database.url with a relative SQLite path made relative to the config file's folder."""
        return resolve_sqlite_path(self.database.url, self.base_dir)

    @property
    def plugin_dirs(self) -> list[Path]:
        return [(self.base_dir / p).resolve() for p in self.plugins.paths]


_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings, "fetch": FetchSettings, "schedule": ScheduleSettings,
    "extract": ExtractSettings, "log": LogSettings, "plugins": PluginSettings,
}
_SECTION_HELP = {
    "feeds": "[[feeds]] tables: one per feed.",
    "stories": "[[stories]] tables: the stories to track (see README, 'Stories').",
}


def resolve_sqlite_path(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix):]
        if rest and rest != ":memory:" and not rest.startswith(("file:", "/")):
            return prefix + str((base / rest).resolve())
    return url


def find_config(explicit: str | None) -> Path | None:
    """--config, then $MONITOR_CONFIG, then ./monitor.toml; None when none is given or found."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("configuration file not found (copy config.example.toml to start one)", str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the configuration file: {e}", str(path)) from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", str(path)) from e
    return settings_from_dict(data, path=path.resolve(), text=text)


def settings_from_dict(data: Mapping[str, Any], *, path: Path | None = None, text: str = "") -> Settings:
    where = _Where(path, text)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise where.error(key, f"[{key}] must be a table")
            values[key] = _build(_SECTIONS[key], value, key, where)
        elif key == "feeds":
            values["feeds"] = _build_feeds(value, where)
        elif key == "stories":
            if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
                raise where.error(key, "stories must be [[stories]] tables")
            values["stories"] = tuple(value)
        else:
            raise where.error(key, f"unknown key {key!r}; known: {', '.join(sorted([*_SECTIONS, 'feeds', 'stories']))}")
    return Settings(**values, path=path)


def _build_feeds(value: Any, where: _Where) -> tuple[FeedSettings, ...]:
    if not isinstance(value, list):
        raise where.error("feeds", "feeds must be [[feeds]] tables (or an array of tables)")
    feeds: list[FeedSettings] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise where.error("feeds", f"feeds[{i}] must be a table with a url")
        feed = _build(FeedSettings, item, f"feeds[{i}]", where)
        if not re.match(r"^https?://[^/\s]+", feed.url, re.I):
            raise where.error("url", f"feeds[{i}].url must be an http(s) URL, got {feed.url!r}", value=feed.url)
        if feed.url not in seen:
            seen.add(feed.url)
            feeds.append(feed)
    return tuple(feeds)


def _build(cls: type, table: Mapping[str, Any], name: str, where: _Where) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            raise where.error(key, f"unknown key {name}.{key}; known keys of [{name.split('[')[0]}]: {', '.join(fields)}")
        try:
            kwargs[key] = _coerce(value, _field_type(cls, key), f.metadata)
        except (TypeError, ValueError) as e:
            raise where.error(key, f"{name}.{key}: {e}") from None
    for f in fields.values():
        if f.metadata.get("required") and f.name not in kwargs:
            raise where.error(name.split("[")[0], f"{name}: missing required key {f.name!r}")
    return cls(**kwargs)


def _field_type(cls: type, key: str) -> Any:
    return typing.get_type_hints(cls)[key]


def _coerce(value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(value, args[0], meta)
    if tp is Duration:
        return Duration(parse_duration(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected a whole number, got {value!r}")
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        choices = meta.get("choices")
        if choices and value.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value.lower() if choices else value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, {}) for v in value]
    raise TypeError(f"unsupported setting type {tp!r}")


class _Where:
    """Finds the line of a key in the file text, for error messages."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def error(self, key: str, message: str, value: Any = None) -> ConfigError:
        if self.path is None:
            return ConfigError(message)
        line = self._line_of(key, value)
        return ConfigError(message, f"{self.path}:{line}" if line else str(self.path))

    def _line_of(self, key: str, value: Any) -> int | None:
        pattern = re.compile(rf"^\s*(\[+\s*)?\"?{re.escape(key)}\"?\s*(=|\]|\.)")
        candidates = [i for i, line in enumerate(self.lines, 1) if pattern.search(line)]
        if value is not None:
            candidates = [i for i in candidates if str(value) in self.lines[i - 1]] or candidates
        return candidates[0] if candidates else None


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every setting: `monitor config keys` and the docs test use it."""
    rows: list[tuple[str, str, str]] = []
    for section, cls in [*_SECTIONS.items(), ("feeds", FeedSettings)]:
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
            prefix = "feeds[]" if section == "feeds" else section
            rows.append((f"{prefix}.{f.name}", _show(default), f.metadata.get("help", "")))
    rows.append(("stories[]", "", _SECTION_HELP["stories"]))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, Duration):
        return _duration_text(float(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(none)"
    if value == "" and not isinstance(value, bool):
        return "(required)"
    return repr(value) if isinstance(value, (str, list)) else str(value)


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
