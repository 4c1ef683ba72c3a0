"""What every command shares: the store opened the same way, a story found by its id, the
enabled stories a command is limited to, and output written to a file or stdout."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.config import Settings, configured_stories
from monitor.exceptions import ConfigError

log = logging.getLogger("monitor")


@contextmanager
def open_store(settings: Settings, *, create: bool = True) -> Iterator[Any]:
    from monitor.runtime import open_store as runtime_store

    with runtime_store(settings, create=create) as store:
        yield store


def story_named(settings: Settings, story_id: str) -> Any:
    """The story `story_id` as configured, or a plugin story not enabled in the config yet (e.g.
    just added); ConfigError (exit 2) naming the known ones when there is none."""
    stories = configured_stories(settings)
    story = next((s for s in stories if s.id == story_id), None)
    if story is None:
        from monitor.matching import load_stories
        from monitor.matching.loader import discover

        if story_id not in discover(settings.plugin_dirs).stories:
            raise ConfigError(f"no story {story_id!r}; configured: {', '.join(s.id for s in stories) or 'none'}")
        [story] = load_stories([{"id": story_id}], plugin_dirs=settings.plugin_dirs, base_dir=settings.base_dir)
    return story


def enabled_stories(settings: Settings) -> list[Any]:
    return [s for s in configured_stories(settings) if s.enabled]


def only_wanted(stories: list[Any], wanted: Sequence[str] | None) -> list[Any]:
    """`stories` limited to those `wanted` (all when none is); ConfigError naming any not among them."""
    if wanted:
        known = {s.id for s in stories}
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ConfigError(f"no enabled story {', '.join(map(repr, unknown))}; enabled: {', '.join(sorted(known)) or 'none'}")
        stories = [s for s in stories if s.id in wanted]
    return stories


def check_window(since: datetime | None, until: datetime | None) -> None:
    if since and until and since >= until:
        raise ConfigError("--since must be earlier than --until")


def check_url(url: str) -> None:
    if not re.match(r"^https?://[^/\s]+", url, re.I):
        raise ConfigError(f"{url!r} is not an http(s) URL")


def write_output(text: str, output: str | None) -> None:
    """`text` into the file `output`, or on stdout ending with a newline."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        log.info("wrote %s", output)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
