"""Configuration: one typed, validated table with defaults and help.

The TOML file is read once into frozen dataclasses. Every key has a type, a default and a
help text (`monitor config keys` prints them); an unknown or mistyped key is an error that
names the key and, where it can be found, the line of the file.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        def fresh() -> Any:   # a copy for every instance: never one list shared by all
            return type(default)(default)

        return field(default_factory=fresh, metadata={"help": help, **kw})
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
    max_new_entries: int = _key(2000, "New entries of one feed whose pages one check fetches, newest first; a feed "
                                "listing more (a flood) is worked through over the following checks, so it never "
                                "holds a pass up. 0 = no bound.")


@dataclass(frozen=True)
class ScheduleSettings:
    interval: Duration = _key(Duration(900), "How often a feed is checked by default (e.g. 15m).")
    min_interval: Duration = _key(Duration(300), "Never check a feed more often than this.")
    max_interval: Duration = _key(Duration(6 * 3600), "Never wait longer than this between checks.")
    tick: Duration = _key(Duration(30), "How often the daemon looks for due feeds.")
    lease: Duration = _key(Duration(300), "With several daemons on PostgreSQL: how long a daemon holds the feeds it "
                           "claimed (renewed while it works); a crashed daemon's feeds are taken over after this.")
    rebuild_stories: Duration = _key(Duration(86400), "How often the daemon makes new story versions from the "
                                     "names stories learned and the judgments analysts made since (0 = never; "
                                     "`monitor stories rebuild` does it by hand).")
    adaptive: bool = _key(True, "Adapt each feed's interval to how busy it is: check feeds that bring several "
                          "new entries per check more often, quiet ones less often, within min_interval and "
                          "max_interval. Feeds with an `interval` of their own are never adapted.")


@dataclass(frozen=True)
class ExtractSettings:
    workers: int = _key(0, "Processes extracting article text; 0 = one per CPU core.")
    timeout: Duration = _key(Duration(30), "Time allowed to extract one page; a page that takes longer is "
                             "abandoned and its article stored from the feed's text.")


@dataclass(frozen=True)
class RetentionSettings:
    drop_bodies_after: Duration = _key(Duration(0), "Unmatched articles first seen longer ago than this lose their "
                                       "text (body and summary; URL, title, dates and outlet stay). 0 = never.")
    drop_unmatched_after: Duration = _key(Duration(0), "Unmatched articles first seen longer ago than this are "
                                          "deleted; their URLs are kept, so they are never fetched again. 0 = never.")
    batch_size: int = _key(500, "Articles pruned per transaction: pruning never holds a lock for long.")

    @property
    def active(self) -> bool:
        return self.drop_bodies_after > 0 or self.drop_unmatched_after > 0


@dataclass(frozen=True)
class LogSettings:
    level: str = _key("info", "Log level: debug, info, warning or error.", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class PluginSettings:
    paths: list[str] = _key([], "Extra folders searched for story (.toml/.py) and rule (.py) plugins, "
                            "relative to the config file. The project's own plugins/ is always searched.")


@dataclass(frozen=True, slots=True)
class FeedSettings:
    url: str = _key("", "Feed URL (RSS or Atom, http or https).", required=True)
    title: str | None = _key(None, "A name for the feed; defaults to the feed's own title.")
    interval: Duration | None = _key(None, "Check this feed on its own interval instead of schedule.interval.")


@dataclass(frozen=True)
class SmtpSettings:
    host: str = _key("localhost", "SMTP server that sends alert and digest e-mails.")
    port: int = _key(587, "SMTP port: 587 for STARTTLS submission, 25 for a local relay.")
    starttls: bool = _key(True, "Upgrade the connection with STARTTLS before anything is sent; "
                          "false only for a relay on this machine.")
    sender: str | None = _key(None, "From address of the e-mails, e.g. monitor@example.org "
                              "(required once any alert or digest sends e-mail).")
    username_env: str | None = _key(None, "Name of the environment variable holding the SMTP user name "
                                    "(none: no login).")
    password_env: str | None = _key(None, "Name of the environment variable holding the SMTP password; "
                                    "the password is never read from the file nor logged.")
    ca_file: str | None = _key(None, "PEM file of certificate authorities to trust instead of the system's "
                               "(a private mail server), relative to the config file.")
    timeout: Duration = _key(Duration(30), "Time allowed for each exchange with the SMTP server.")


@dataclass(frozen=True)
class DeliverySettings:
    retry_initial: Duration = _key(Duration(60), "Wait before retrying a failed alert or digest; doubles "
                                   "with every further failure.")
    retry_max: Duration = _key(Duration(3600), "Longest wait between two retries.")
    max_attempts: int = _key(8, "Attempts before a message is given up (logged, and its matches marked failed).")


MINIFLUX_SECRET_ENV = "MONITOR_MINIFLUX_SECRET"
API_TOKEN_ENV = "MONITOR_API_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    host: str = _key("127.0.0.1", "Address `monitor serve` listens on. Keep 127.0.0.1 unless a TLS proxy "
                     "(or a private network) stands between the server and everyone else.")
    port: int = _key(8080, "Port `monitor serve` listens on.")
    miniflux_secret: str | None = _key(None, "The secret Miniflux signs its webhook calls with (Settings > "
                                       f"Integrations > Webhook); ${MINIFLUX_SECRET_ENV}, when set, takes "
                                       "precedence. Without either, /webhooks/miniflux refuses every call.")
    max_body_bytes: int = _key(5 * 1024 * 1024, "Largest webhook request body accepted, in bytes.")
    api_token: str | None = _key(None, "When set, every /api request must send `Authorization: Bearer "
                                 f"TOKEN`; ${API_TOKEN_ENV}, when set, takes precedence. Unset: the read "
                                 "API is open to whoever can reach the server, and writes (judgments) "
                                 "are refused.")

    @property
    def webhook_secret(self) -> str | None:
        """The Miniflux secret in force: the environment's, else the file's; None when neither is set."""
        return os.environ.get(MINIFLUX_SECRET_ENV) or self.miniflux_secret or None

    @property
    def read_token(self) -> str | None:
        """The read API's bearer token in force: the environment's, else the file's; None = open."""
        return os.environ.get(API_TOKEN_ENV) or self.api_token or None


_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


@dataclass(frozen=True)
class AlertSettings:
    story: str = _key("", "Id of the story whose new matches are sent.", required=True)
    webhook: str | None = _key(None, "http(s) URL that receives a POST for each batch of new matches.")
    format: str = _key("json", "Webhook body: json (monitor's own) or slack (a Slack incoming-webhook message).",
                       choices=("json", "slack"))
    email: list[str] = _key([], "Addresses that receive an e-mail for each batch (via [smtp]).")
    interval: Duration = _key(Duration(900), "At most one message per this interval; matches found in "
                              "between wait and go together.")
    min_score: float = _key(0.0, "Only matches scoring at least this (0 to 1).")
    id: str | None = _key(None, "A stable name under which sent matches are remembered; default: derived "
                          "from the story and the destination (changing those starts afresh).")

    @property
    def key(self) -> str:
        """The name delivery state is kept under."""
        if self.id:
            return self.id
        kind, destination = ("webhook", self.webhook) if self.webhook else ("email", ",".join(sorted(self.email)))
        return f"{self.story}/{kind}-{_digest_of(destination or '')}"


@dataclass(frozen=True)
class DigestSettings:
    cron: str = _key("", "When to send: a cron expression (minute hour day month weekday), e.g. \"0 7 * * *\".",
                     required=True)
    timezone: str = _key("UTC", "Time zone of the cron expression, e.g. Europe/Paris.")
    story: str | None = _key(None, "Id of the story reported; default: every enabled story.")
    format: str = _key("html", "Format of the digest: text, markdown, html, json or csv.",
                       choices=("text", "markdown", "html", "json", "csv"))
    window: Duration = _key(Duration(86400), "The digest covers matches filed in this period before its "
                            "scheduled time.")
    email: list[str] = _key([], "Addresses that receive the digest (via [smtp]).")
    webhook: str | None = _key(None, "http(s) URL that receives the digest in a POST.")
    path: str | None = _key(None, "File the digest is written to, relative to the config file; strftime codes "
                            "(%Y-%m-%d) take the scheduled time.")
    id: str | None = _key(None, "A stable name for this digest's runs; default: derived from its other keys.")

    @property
    def key(self) -> str:
        """The name this digest's runs are recorded under."""
        if self.id:
            return self.id
        identity = "|".join([self.cron, self.timezone, self.story or "", self.format, *sorted(self.email),
                             self.webhook or "", self.path or ""])
        return f"digest/{self.story or 'all'}-{_digest_of(identity)}"


def _digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    log: LogSettings = field(default_factory=LogSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    feeds: tuple[FeedSettings, ...] = ()
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    alerts: tuple[AlertSettings, ...] = ()
    digests: tuple[DigestSettings, ...] = ()
    # [[stories]] tables: their shape is checked on loading (ids, keys); their values by
    # `configured_stories`, which knows the plugin stories and rules they name.
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


def with_database(settings: Settings, url: str) -> Settings:
    """`settings` using the database at `url` (a relative SQLite path is relative to the working
    directory, as on a command line)."""
    if not re.match(r"^[a-z][a-z0-9+]*://", url.strip(), re.I):
        raise ConfigError(f"--database {url!r} is not a database URL: use sqlite:///path/monitor.db "
                          "or postgresql://user@host/dbname")
    from monitor.db.engine import url_problem

    resolved = resolve_sqlite_path(url.strip(), Path.cwd())
    problem = url_problem(resolved, as_written=url.strip())
    if problem:
        raise ConfigError(f"--database: {problem}")
    return dataclasses.replace(settings, database=DatabaseSettings(url=resolved))


_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings, "fetch": FetchSettings, "schedule": ScheduleSettings,
    "extract": ExtractSettings, "log": LogSettings, "retention": RetentionSettings, "plugins": PluginSettings,
    "smtp": SmtpSettings, "delivery": DeliverySettings, "serve": ServeSettings,
}
# Arrays of tables with typed keys, besides [[feeds]].
_TABLE_ARRAYS: dict[str, type] = {"alerts": AlertSettings, "digests": DigestSettings}
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
            values["stories"] = _build_stories(value, where)
        elif key in _TABLE_ARRAYS:
            values[key] = _build_table_array(key, value, where)
        else:
            known = sorted([*_SECTIONS, *_TABLE_ARRAYS, "feeds", "stories"])
            raise where.error(key, f"unknown key {key!r}; known: {', '.join(known)}")
    settings = Settings(**values, path=path)
    _check_messaging(settings, where)
    _check_serve(settings.serve, where)
    if settings.retention.batch_size < 1:
        raise where.error("batch_size", f"retention.batch_size must be at least 1, got {settings.retention.batch_size}",
                          value=settings.retention.batch_size)
    return settings


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


def _build_stories(value: Any, where: _Where) -> tuple[Mapping[str, Any], ...]:
    """[[stories]]: each a table with an id of its own, and only keys a story has; a table with
    neither title nor rules selects a plugin story and may set only what a plugin story lets."""
    from monitor.matching.loader import OVERRIDE_KEYS, STORY_KEYS

    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise where.error("stories", "stories must be [[stories]] tables")
    seen: dict[str, int] = {}
    for i, table in enumerate(value):
        name = f"stories[{i}]"
        story_id = table.get("id")
        if not isinstance(story_id, str) or not story_id.strip():
            raise where.error_in("stories", i, "id", f"{name}: `id` must be a non-empty string")
        if story_id in seen:
            raise where.error_in("stories", i, "id", f"{name}: story {story_id!r} is configured twice "
                                 f"(also stories[{seen[story_id]}])")
        seen[story_id] = i
        selects_plugin = not {"title", "rules"} & set(table)
        allowed = OVERRIDE_KEYS if selects_plugin else STORY_KEYS
        unknown = sorted(set(table) - allowed)
        if unknown and not selects_plugin:
            raise where.error_in("stories", i, unknown[0], f"story {story_id!r}: key {unknown[0]!r} is not a known "
                                 f"story key ({', '.join(sorted(STORY_KEYS))})")
        if unknown:
            raise where.error_in("stories", i, unknown[0], f"story {story_id!r}: key {unknown[0]!r} cannot be set on a "
                                 f"plugin story (only {', '.join(sorted(OVERRIDE_KEYS - {'id'}))} can be overridden; "
                                 "a story of your own needs a title and rules)")
    return tuple(value)


def _build_table_array(key: str, value: Any, where: _Where) -> tuple[Any, ...]:
    """[[alerts]] or [[digests]]: each table typed, its destinations checked, keys unique."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise where.error(key, f"{key} must be [[{key}]] tables")
    items = []
    seen: dict[str, int] = {}
    for i, table in enumerate(value):
        name = f"{key}[{i}]"
        item = _build(_TABLE_ARRAYS[key], table, name, where)
        _check_destinations(item, name, where)
        if key == "digests":
            _check_cron(item, name, where)
        elif not 0.0 <= item.min_score <= 1.0:
            raise where.error("min_score", f"{name}.min_score must lie in 0-1, got {item.min_score}")
        if item.key in seen:
            raise where.error(key, f"{name} repeats {key}[{seen[item.key]}] ({item.key!r}); give each an id")
        seen[item.key] = i
        items.append(item)
    return tuple(items)


def _check_destinations(item: AlertSettings | DigestSettings, name: str, where: _Where) -> None:
    if item.webhook is not None and not re.match(r"^https?://[^/\s]+", item.webhook, re.I):
        raise where.error("webhook", f"{name}.webhook must be an http(s) URL, got {item.webhook!r}",
                          value=item.webhook)
    for address in item.email:
        if not _EMAIL.match(address):
            raise where.error("email", f"{name}.email: {address!r} is not an e-mail address", value=address)
    given = [k for k, v in (("webhook", item.webhook), ("email", item.email),
                            ("path", getattr(item, "path", None))) if v]
    if isinstance(item, AlertSettings) and len(given) != 1:
        raise where.error("story", f"{name}: give exactly one of webhook or email (one [[alerts]] table "
                                   f"per destination), got {', '.join(given) or 'none'}", value=item.story)
    if isinstance(item, DigestSettings) and len(given) != 1:
        raise where.error("cron", f"{name}: give exactly one of email, webhook or path (one [[digests]] table "
                                  f"per destination), got {', '.join(given) or 'none'}", value=item.cron)
    if len(item.key) > 200:
        raise where.error("id", f"{name}.id is longer than 200 characters")


def _check_cron(item: DigestSettings, name: str, where: _Where) -> None:
    from monitor.alerts.cron import CronSchedule

    try:
        CronSchedule.parse(item.cron, item.timezone)
    except ValueError as e:
        raise where.error("cron", f"{name}: {e}", value=item.cron) from None


def check_database(settings: Settings) -> None:
    """Refuse, naming the line, a database.url no command could open: not a URL, a database other
    than SQLite and PostgreSQL, an SQLite file in a missing folder. (Apart from loading, so that
    `--database URL` can stand in for a database.url that does not work here.)"""
    from monitor.db.engine import url_problem

    problem = url_problem(settings.database_url, as_written=settings.database.url)
    if problem:
        raise located(settings, f"database.url: {problem}", "url", settings.database.url)


def _check_messaging(settings: Settings, where: _Where) -> None:
    """E-mail needs a sender; a credential's variable is named, never the credential itself."""
    mailing = [f"{key}[{i}]" for key in _TABLE_ARRAYS for i, item in enumerate(getattr(settings, key))
               if item.email]
    if mailing and not settings.smtp.sender:
        raise where.error("smtp", f"{mailing[0]} sends e-mail: set sender in [smtp]")
    for key in ("username_env", "password_env"):
        name = getattr(settings.smtp, key)
        if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise where.error(key, f"smtp.{key} must name an environment variable (e.g. MONITOR_SMTP_PASSWORD), "
                                   "not hold the credential itself")


def _check_serve(serve: ServeSettings, where: _Where) -> None:
    if not 0 < serve.port < 65536:
        raise where.error("port", f"serve.port must lie in 1-65535, got {serve.port}", value=serve.port)
    if serve.max_body_bytes < 1024:
        raise where.error("max_body_bytes", f"serve.max_body_bytes must be at least 1024, got {serve.max_body_bytes}")


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
    return _type_hints(cls)[key]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # Resolved once per settings class: resolving them per table made 100,000 [[feeds]] take 30 s.
    return typing.get_type_hints(cls)


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


def configured_stories(settings: Settings) -> list[Any]:
    """The configured stories; a problem with one names the line of its [[stories]] table."""
    from monitor.matching import load_stories
    from monitor.matching.loader import StoryError, discover

    known = discover(settings.plugin_dirs).stories
    where = _Where(settings.path, _text_of(settings))
    for i, table in enumerate(settings.stories):
        story_id = table.get("id")
        # A table with neither title nor rules selects a plugin story: it must exist.
        if isinstance(story_id, str) and story_id not in known and not {"title", "rules"} & set(table):
            raise where.error_in("stories", i, "id", f"no story {story_id!r}; known: {', '.join(sorted(known)) or 'none'} "
                                 "(plugin stories of plugins/ and [plugins] paths; `monitor stories add` makes one)")
    try:
        return load_stories(settings.stories, plugin_dirs=settings.plugin_dirs, base_dir=settings.base_dir)
    except StoryError as e:
        index = next((i for i, t in enumerate(settings.stories) if t.get("id") == e.story_id), None)
        if e.where is None and index is not None and settings.path is not None:
            raise where.error_in("stories", index, e.key or "id", str(e)) from e
        raise


def _text_of(settings: Settings) -> str:
    if settings.path is not None:
        try:
            return settings.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
    return ""


def located(settings: Settings, message: str, key: str, value: Any = None) -> ConfigError:
    """A ConfigError about `key` (= `value`) of the file `settings` came from, naming its line."""
    return _Where(settings.path, _text_of(settings)).error(key, message, value=value)


class _Where:
    """Finds the line of a key in the file text, for error messages."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def error(self, key: str, message: str, value: Any = None) -> ConfigError:
        if self.path is None:
            return ConfigError(message)
        line = self._line_of(key, value)
        return ConfigError(message, f"{self.path}:{line}" if line else str(self.path))

    def error_in(self, array: str, index: int, key: str, message: str) -> ConfigError:
        """A ConfigError about `key` of the `index`th [[array]] table: the line of the key inside
        that table (its sub-tables [array.key] included), else the line of its header."""
        if self.path is None:
            return ConfigError(message)
        header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]")
        tables = [(i, m.group(1)) for i, line in enumerate(self.lines, 1) if (m := header.match(line))]
        starts = [i for i, name in tables if name == array]
        if index >= len(starts):      # an inline array of tables: only the key can be looked for
            line = self._line_of(key, None)
        else:
            start = starts[index]
            end = next((i for i, name in tables if i > start and not name.startswith(f"{array}.")), len(self.lines) + 1)
            sub_table = re.compile(rf"^\s*\[+\s*{re.escape(array)}\.{re.escape(key)}\s*[.\]]")
            line = next((i for i in range(start, end) if sub_table.match(self.lines[i - 1])), None)
            line = line or self._line_of(key, None, first=start, last=end - 1) or start
        return ConfigError(message, f"{self.path}:{line}" if line else str(self.path))

    def _line_of(self, key: str, value: Any, first: int = 1, last: int | None = None) -> int | None:
        pattern = re.compile(rf"^\s*(\[+\s*)?\"?{re.escape(key)}\"?\s*(=|\]|\.)")
        candidates = [i for i, line in enumerate(self.lines, 1)
                      if first <= i <= (last or len(self.lines)) and pattern.search(line)]
        if value is not None:
            candidates = [i for i in candidates if str(value) in self.lines[i - 1]] or candidates
        return candidates[0] if candidates else None


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every setting: `monitor config keys` and the docs test use it."""
    rows: list[tuple[str, str, str]] = []
    arrays = {"feeds": FeedSettings, **_TABLE_ARRAYS}
    for section, cls in [*_SECTIONS.items(), *arrays.items()]:
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            prefix = f"{section}[]" if section in arrays else section
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
