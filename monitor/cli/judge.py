"""`monitor judge`: label an article on or off a story, and say what the story's next version
would change."""
from __future__ import annotations

import argparse
import os
from typing import Any, NamedTuple

from monitor.cli.common import open_store, story_named
from monitor.config import Settings
from monitor.exceptions import ConfigError


class Judged(NamedTuple):
    story: Any
    judgment: Any         # the stored judgment: url, author, whether its article is stored, title
    current: Any          # the story as its current version decides
    upcoming: Any         # ... and as its next version would
    changed: bool         # whether the next version differs


def cmd_judge(settings: Settings, args: argparse.Namespace) -> int:
    print(render_judged(judge_article(settings, args), args.label), end="")
    return 0


def judge_article(settings: Settings, args: argparse.Namespace) -> Judged:
    import getpass

    from monitor.db.story_models import current_stories, judge, rebuild

    story = story_named(settings, args.story)
    try:
        author = args.author if args.author is not None else (os.environ.get("USER") or getpass.getuser())
    except (OSError, KeyError):
        raise ConfigError("who is judging? $USER is not set: give --author NAME") from None
    with open_store(settings) as store:
        try:
            judged = judge(store, story.id, args.url, args.label, author=author, note=args.note)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        [current] = current_stories(store, [story])
        upcoming, changed = rebuild(store, story, dry_run=True)
    return Judged(story, judged, current, upcoming, changed)


# -- rendering ------------------------------------------------------------------------------

def render_judged(j: Judged, label: str) -> str:
    story, judged, current, upcoming = j.story, j.judgment, j.current, j.upcoming
    lines = [f"judged {label} story {story.id} by {judged.author}: {judged.url}"]
    if judged.stored:
        lines.append(f"  article: {judged.title or '(no title)'}")
    else:
        lines.append("  no article is stored at this address yet: the judgment waits for it (from the story's next\n"
                     "  version on, it decides the article when a pass stores it)")
    if not j.changed:
        lines.append(f"story {story.id}: version {current.version} already follows this judgment; nothing to apply")
        return "\n".join(lines) + "\n"
    lines.append(f"the story's next version ({upcoming.version}, now {current.version}) would:")
    lines += [f"  {line}" for line in version_changes(current, upcoming)]
    lines.append(f"see which stored matches it changes:  monitor stories backfill {story.id} --dry-run\n"
                 f"then apply it:                       monitor stories backfill {story.id}")
    return "\n".join(lines) + "\n"


def version_changes(current: Any, upcoming: Any) -> list[str]:
    """What `upcoming` (a story as its next version decides) changes from `current`, in words."""
    lines = []
    for url in sorted(set(current.judged) | set(upcoming.judged)):
        before, after = current.judged.get(url), upcoming.judged.get(url)
        if before != after:
            lines.append(f"follow the judgment {url} is {after or 'unjudged'}" + (f" (was {before})" if before else ""))
    on = sum(label == "on" for label in upcoming.judged.values())
    off = sum(label == "off" for label in upcoming.judged.values())
    if upcoming.terms != current.terms:
        lines.append(f"move the profile toward the stored articles judged on ({on} judged) and away from "
                     f"those judged off ({off} judged)" if upcoming.terms else "restore the reference profile")
    elif not upcoming.terms:
        lines.append("leave the profile as it is (the story has no reference terms); judged articles decide themselves")
    gained = [n for n in upcoming.learned if n not in current.learned]
    lost = [n for n in current.learned if n not in upcoming.learned]
    if gained or lost:
        lines.append("learn names " + ", ".join([*(f"+{n}" for n in gained), *(f"-{n}" for n in lost)]))
    return lines
