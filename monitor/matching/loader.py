"""Discovery of rules and stories, and validation of story tables.

Rules come from the built-ins, the `monitor.rules` entry-point group and `.py` files in plugin
folders (a module-level `RULES` list of rule classes). Stories come from `.toml` files in plugin
folders (the story's keys at top level), `STORIES` lists in `.py` plugin files and the
`monitor.stories` entry-point group (a story table, a list of them, or a callable returning
either). The project's own `plugins/` folder is always searched first.
"""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from monitor.exceptions import ConfigError, PluginError
from monitor.matching.base import Facet, Name, Reference, RuleFactory, RuleSpec, Story
from monitor.matching.index import shared_terms
from monitor.matching.profile import derive_profile
from monitor.matching.rules import BUILTIN_RULES
from monitor.matching.text import parse_alias, tokenize

__all__ = ["RuleInfo", "Registry", "StoryError", "STORY_KEYS", "OVERRIDE_KEYS", "discover", "load_stories", "list_rules",
           "parse_story", "project_plugin_dir"]

STORY_KEYS = frozenset({"id", "title", "description", "enabled", "threshold", "bias", "start", "end", "reference",
                        "names", "places", "facets", "anchors", "anchors_needed", "terms", "rules"})
# The keys a [[stories]] table may set on a plugin story it selects by id.
OVERRIDE_KEYS = frozenset({"id", "enabled", "threshold", "reference"})
_RULE_KEYS = {"name", "weight", "required", "params"}
_NAME_KEYS = {"name", "aliases", "weak"}
_REFERENCE_KEYS = {"url", "title", "path"}


class StoryError(ConfigError):
    """A story table is wrong: names the story and the top-level key at fault, so that the
    configuration can point at the line of a [[stories]] table."""

    def __init__(self, message: str, story_id: str | None, key: str | None) -> None:
        super().__init__(message)
        self.story_id = story_id
        self.key = key


@dataclass(frozen=True, slots=True)
class RuleInfo:
    name: str
    version: str
    origin: str           # "built-in", "entry point <dist>", "plugins/<file>"


@dataclass(frozen=True, slots=True)
class Registry:
    """Everything discovered: rule factories by name and plugin stories by id."""

    rules: Mapping[str, tuple[RuleFactory, RuleInfo]]
    stories: Mapping[str, Story]


def project_plugin_dir() -> Path | None:
    """The packaged copy monitor/_plugins when installed, else <repo>/plugins next to the package."""
    package = Path(__file__).resolve().parent.parent
    # The packaged copy first: next to an installed package lies site-packages, not our repo.
    for candidate in (package / "_plugins", package.parent / "plugins"):
        if candidate.is_dir():
            return candidate
    return None


def _check_rule_class(rule: Any, plugin: str) -> None:
    for attribute in ("name", "version"):
        if not isinstance(getattr(rule, attribute, None), str) or not getattr(rule, attribute):
            raise PluginError(plugin, f"rule {rule!r} has no string `{attribute}`")
    if not callable(rule) or not callable(getattr(rule, "evaluate", None)):
        raise PluginError(plugin, f"rule {rule.name!r} must be a class with an evaluate(doc) method")


def _import_file(path: Path, plugin: str) -> ModuleType:
    module_name = f"monitor_plugin_{abs(hash(str(path)))}_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(plugin, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise PluginError(plugin, f"failed to import: {e}") from e
    return module


def _story_tables(value: Any, plugin: str) -> list[Mapping[str, Any]]:
    if callable(value):
        try:
            value = value()
        except Exception as e:
            raise PluginError(plugin, f"story factory failed: {e}") from e
    tables = [value] if isinstance(value, Mapping) else value
    if not isinstance(tables, (list, tuple)) or not all(isinstance(t, Mapping) for t in tables):
        raise PluginError(plugin, "stories must be a table or a list of tables")
    return list(tables)


def discover(plugin_dirs: Sequence[Path] = ()) -> Registry:
    """Find every rule and plugin story; PluginError names the plugin at fault."""
    rules: dict[str, tuple[RuleFactory, RuleInfo]] = {
        name: (cls, RuleInfo(name, cls.version, "built-in")) for name, cls in BUILTIN_RULES.items()}
    pending_stories: list[tuple[Mapping[str, Any], str, Path | None]] = []

    def add_rule(rule: Any, origin: str, plugin: str) -> None:
        _check_rule_class(rule, plugin)
        if rule.name in rules:
            raise PluginError(plugin, f"rule name {rule.name!r} is already taken ({rules[rule.name][1].origin})")
        rules[rule.name] = (rule, RuleInfo(rule.name, rule.version, origin))

    for ep in entry_points(group="monitor.rules"):
        plugin = f"entry point {ep.name}"
        try:
            rule = ep.load()
        except Exception as e:
            raise PluginError(plugin, f"failed to load: {e}") from e
        add_rule(rule, f"entry point {ep.dist.name if ep.dist else ep.value}", plugin)
    for ep in entry_points(group="monitor.stories"):
        plugin = f"entry point {ep.name}"
        try:
            loaded = ep.load()
        except Exception as e:
            raise PluginError(plugin, f"failed to load: {e}") from e
        pending_stories += [(t, plugin, None) for t in _story_tables(loaded, plugin)]

    folders = [d for d in (project_plugin_dir(), *plugin_dirs) if d is not None]
    seen: set[Path] = set()
    for folder in folders:
        folder = Path(folder).resolve()
        if folder in seen:
            continue
        seen.add(folder)
        if not folder.is_dir():
            raise PluginError(str(folder), "plugin folder does not exist")
        for path in sorted(folder.iterdir()):
            plugin = f"{folder.name}/{path.name}"
            if path.suffix == ".py" and not path.name.startswith("_"):
                module = _import_file(path, plugin)
                for rule in getattr(module, "RULES", ()):
                    add_rule(rule, plugin, plugin)
                if hasattr(module, "STORIES"):
                    pending_stories += [(t, plugin, path.parent) for t in _story_tables(module.STORIES, plugin)]
            elif path.suffix == ".toml":
                try:
                    read = tomllib.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                    raise PluginError(plugin, f"cannot read story: {e}") from e
                pending_stories.append((read, plugin, path.parent))

    stories: dict[str, Story] = {}
    for table, plugin, base_dir in pending_stories:
        try:
            story = parse_story(table, origin=plugin, base_dir=base_dir, rule_names=set(rules))
        except ConfigError as e:
            raise PluginError(plugin, str(e)) from e
        if story.id in stories:
            raise PluginError(plugin, f"story id {story.id!r} is already defined by {stories[story.id].origin}")
        stories[story.id] = story
    return Registry(rules=rules, stories=stories)


def list_rules(plugin_dirs: Sequence[Path] = ()) -> list[RuleInfo]:
    """Every rule available, built-ins first."""
    return [info for _, info in discover(plugin_dirs).rules.values()]


def load_stories(story_tables: Sequence[Mapping[str, Any]], *, plugin_dirs: Sequence[Path] = (),
                 base_dir: Path | None = None) -> list[Story]:
    """The configured stories: plugin stories selected by id (with overrides) or inline ones."""
    registry = discover(plugin_dirs)
    stories: list[Story] = []
    configured: set[str] = set()
    for position, table in enumerate(story_tables):
        if not isinstance(table, Mapping):
            raise ConfigError(f"stories[{position}] must be a table")
        story_id = table.get("id")
        if not isinstance(story_id, str) or not story_id:
            raise ConfigError(f"stories[{position}]: `id` must be a non-empty string")
        shipped = registry.stories.get(story_id)
        if shipped is not None:
            extra = sorted(set(table) - OVERRIDE_KEYS)
            if extra:
                raise StoryError(f"story {story_id!r}: key {extra[0]!r} cannot be set on a plugin story "
                                 f"(only {', '.join(sorted(OVERRIDE_KEYS - {'id'}))} can be overridden)", story_id, extra[0])
            story = _override(shipped, table, base_dir)
        else:
            story = parse_story(table, origin="config", base_dir=base_dir, rule_names=set(registry.rules))
        if story.id in configured:   # a set: a check per story, not a scan of the stories so far
            raise StoryError(f"story {story.id!r} is configured twice", story.id, "id")
        configured.add(story.id)
        story = _resolve_rules(story, registry)
        stories.append(story)
    return stories


def _resolve_rules(story: Story, registry: Registry) -> Story:
    """Attach each rule's class and build it once now: a bad parameter fails at load time."""
    specs = []
    for spec in story.rules:
        factory, info = registry.rules[spec.name]
        try:
            factory(story, spec.params)
        except PluginError:
            raise
        except Exception as e:
            raise StoryError(f"story {story.id!r}: rule {spec.name!r} ({info.origin}): {e}", story.id, "rules") from e
        specs.append(replace(spec, factory=factory))
    return replace(story, rules=tuple(specs))


def _override(story: Story, table: Mapping[str, Any], base_dir: Path | None) -> Story:
    where = f"story {story.id!r}"
    changes: dict[str, Any] = {}
    if "enabled" in table:
        changes["enabled"] = _bool(table["enabled"], where, "enabled")
    if "threshold" in table:
        changes["threshold"] = _unit(table["threshold"], where, "threshold")
    if "reference" in table:
        reference = _reference(table["reference"], where, base_dir)
        changes["reference"] = reference
        if reference.path:
            changes["terms"] = _reference_terms(reference, where)
    return replace(story, **changes)


def _fail(where: str, key: str, message: str) -> StoryError:
    # `where` is "story 'x'" or, inside a list of tables, "story 'x', rules[0]".
    story, _, inside = where.partition(", ")
    story_id = story[len("story '"):-1] if story.startswith("story '") and story.endswith("'") else None
    top_key = inside.split("[")[0] if inside else key.split(".")[0]
    return StoryError(f"{where}: key {key!r} {message}", story_id, top_key)


def _bool(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, f"must be true or false, got {value!r}")
    return value


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, key, f"must be a number, got {value!r}")
    return float(value)


def _unit(value: Any, where: str, key: str) -> float:
    number = _number(value, where, key)
    if not 0.0 <= number <= 1.0:
        raise _fail(where, key, f"must be in [0, 1], got {value!r}")
    return number


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, f"must be a non-empty string, got {value!r}")
    return value


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, key, "must be a list of non-empty strings")
    for alias in value:
        try:
            parse_alias(alias)
        except ValueError as e:
            raise _fail(where, key, str(e)) from e
    return tuple(value)


def _datetime(value: Any, where: str, key: str, *, end: bool) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError as e:
            raise _fail(where, key, f"is not an ISO 8601 date or date-time: {value!r}") from e
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _fail(where, key, "needs a time zone offset (e.g. 2018-03-08T00:00:00Z)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        # A bare date covers the whole day.
        return datetime.combine(value, time.max if end else time.min, tzinfo=UTC)
    raise _fail(where, key, f"must be a date or date-time, got {value!r}")


def _names(value: Any, where: str, key: str) -> tuple[Name, ...]:
    if not isinstance(value, list):
        raise _fail(where, key, "must be a list")
    names = []
    for i, item in enumerate(value):
        item_where = f"{where}, {key}[{i}]"
        if isinstance(item, str):
            names.append(Name(_strings([item], where, key)[0]))
            continue
        if not isinstance(item, Mapping):
            raise _fail(where, key, "entries must be strings or tables {name, aliases, weak}")
        unknown = sorted(set(item) - _NAME_KEYS)
        if unknown:
            raise _fail(item_where, unknown[0], "is not a known key (name, aliases, weak)")
        names.append(Name(_strings([_string(item.get("name"), item_where, "name")], item_where, "name")[0],
                          _strings(item.get("aliases", []), item_where, "aliases"),
                          _strings(item.get("weak", []), item_where, "weak")))
    return tuple(names)


def _reference(value: Any, where: str, base_dir: Path | None) -> Reference:
    if isinstance(value, str):
        return Reference(url=_string(value, where, "reference"))
    if not isinstance(value, Mapping):
        raise _fail(where, "reference", "must be a URL or a table {url, title, path}")
    unknown = sorted(set(value) - _REFERENCE_KEYS)
    if unknown:
        raise _fail(where, f"reference.{unknown[0]}", "is not a known key (url, title, path)")
    fields = {k: _string(v, where, f"reference.{k}") for k, v in value.items()}
    if "path" in fields:
        path = Path(fields["path"]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        fields["path"] = str(path)
    return Reference(**fields)


def _reference_terms(reference: Reference, where: str) -> dict[str, float]:
    assert reference.path is not None
    try:
        text = Path(reference.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(where, "reference.path", f"cannot be read: {e}") from e
    return dict(derive_profile(text, title=reference.title or "").terms)


def parse_story(table: Mapping[str, Any], *, origin: str = "config", base_dir: Path | None = None,
                rule_names: Iterable[str] = BUILTIN_RULES) -> Story:
    """Validate a full story table; ConfigError names the story and the key."""
    story_id = table.get("id")
    where = f"story {story_id!r}"
    _string(story_id, where, "id")
    unknown = sorted(set(table) - STORY_KEYS)
    if unknown:
        raise _fail(where, unknown[0], f"is not a known story key ({', '.join(sorted(STORY_KEYS))})")
    fields: dict[str, Any] = {"id": story_id, "origin": origin,
                              "title": _string(table.get("title"), where, "title")}
    if "description" in table:
        fields["description"] = _string(table["description"], where, "description")
    if "enabled" in table:
        fields["enabled"] = _bool(table["enabled"], where, "enabled")
    if "threshold" in table:
        fields["threshold"] = _unit(table["threshold"], where, "threshold")
    if "bias" in table:
        fields["bias"] = _number(table["bias"], where, "bias")
    if "start" in table:
        fields["start"] = _datetime(table["start"], where, "start", end=False)
    if "end" in table:
        fields["end"] = _datetime(table["end"], where, "end", end=True)
    if fields.get("start") and fields.get("end") and fields["start"] > fields["end"]:
        raise _fail(where, "end", "is before `start`")
    if "names" in table:
        fields["names"] = _names(table["names"], where, "names")
    if "places" in table:
        fields["places"] = _names(table["places"], where, "places")
    if "facets" in table:
        facets = table["facets"]
        if not isinstance(facets, Mapping) or not facets:
            raise _fail(where, "facets", "must be a table of label = [names or terms]")
        fields["facets"] = tuple(Facet(label, _strings(entries, where, f"facets.{label}"))
                                 for label, entries in facets.items())
    if "anchors" in table:
        anchors = _strings(table["anchors"], where, "anchors")
        bad = next((a for a in anchors if len(tokenize(a)) != 1), None)
        if bad is not None:
            raise _fail(where, "anchors", f"must be single words; {bad!r} is not")
        fields["anchors"] = tuple(sys.intern(tokenize(a)[0]) for a in anchors)   # shared with `terms`
    if "anchors_needed" in table:
        needed = table["anchors_needed"]
        if isinstance(needed, bool) or not isinstance(needed, int) or not 1 <= needed <= len(fields.get("anchors", ())):
            raise _fail(where, "anchors_needed", "must be a whole number from 1 to the number of anchors, "
                        f"got {needed!r}")
        fields["anchors_needed"] = needed
    if "terms" in table:
        terms = table["terms"]
        if not isinstance(terms, Mapping):
            raise _fail(where, "terms", "must be a table of term = weight")
        fields["terms"] = shared_terms({term: _number(w, where, f"terms.{term}") for term, w in terms.items()})
        if any(w <= 0 for w in fields["terms"].values()):
            raise _fail(where, "terms", "weights must be positive")
    if "reference" in table:
        fields["reference"] = _reference(table["reference"], where, base_dir)
        if fields["reference"].path and "terms" not in fields:
            fields["terms"] = _reference_terms(fields["reference"], where)
    if "rules" in table:
        fields["rules"] = _rules(table["rules"], where, set(rule_names))
    if not fields.get("rules"):
        raise _fail(where, "rules", "must list at least one rule")
    return Story(**fields)


def _rules(value: Any, where: str, rule_names: set[str]) -> tuple[RuleSpec, ...]:
    if not isinstance(value, list):
        raise _fail(where, "rules", "must be a list of tables {name, weight, required, params}")
    specs = []
    for i, item in enumerate(value):
        item_where = f"{where}, rules[{i}]"
        if not isinstance(item, Mapping):
            raise _fail(where, "rules", "entries must be tables {name, weight, required, params}")
        unknown = sorted(set(item) - _RULE_KEYS)
        if unknown:
            raise _fail(item_where, unknown[0], "is not a known key (name, weight, required, params)")
        name = _string(item.get("name"), item_where, "name")
        if name not in rule_names:
            raise _fail(item_where, "name", f"names no known rule: {name!r} (known: {', '.join(sorted(rule_names))})")
        params = item.get("params", {})
        if not isinstance(params, Mapping):
            raise _fail(item_where, "params", "must be a table")
        specs.append(RuleSpec(name, dict(params), _number(item.get("weight", 1.0), item_where, "weight"),
                              _bool(item.get("required", False), item_where, "required")))
    return tuple(specs)
