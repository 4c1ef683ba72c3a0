"""`monitor config`: every configuration key, and a check of the configuration in use."""
from __future__ import annotations

import argparse

from monitor.config import Settings, configured_stories, describe_keys
from monitor.wording import plural


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "keys":
        print(render_keys(describe_keys()), end="")
        return 0
    stories = configured_stories(settings)
    print(render_check(settings, sum(s.enabled for s in stories)))
    return 0


# -- rendering ------------------------------------------------------------------------------

def render_keys(keys: list[tuple[str, str, str]]) -> str:
    return "".join(f"{key}  (default {default})\n    {help}\n" if default else f"{key}\n    {help}\n"
                   for key, default, help in keys)


def render_check(settings: Settings, enabled: int) -> str:
    from monitor.db.engine import masked_url

    return (f"configuration {settings.path or '(defaults, no file)'} is valid: {plural(len(settings.feeds), 'feed')}, "
            f"{plural(enabled, 'enabled story', 'enabled stories')}, "
            f"database {masked_url(settings.database_url)}")
