"""`monitor stories`: list, add (from a reference article), show (or its --versions), rebuild,
test (one article, rule by rule) and backfill (re-score stored articles); and `monitor rules`.

Each action computes its values first; the render_* functions turn them into the text printed."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from monitor.cli.common import open_store, story_named
from monitor.config import Settings, configured_stories
from monitor.exceptions import ConfigError
from monitor.progress import StatusLine
from monitor.wording import plural


def cmd_stories(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.db.story_models import current_if_stored
    from monitor.matching import authoring

    if args.action == "add":
        print(render_added(add_story(settings, args)), end="")
        return 0
    if args.action == "list":
        print(render_story_list(configured_stories(settings)), end="")
        return 0
    story = story_named(settings, args.id)
    if args.action == "show":
        if getattr(args, "versions", False):
            print(render_versions(story, story_versions(settings, story)), end="")
            return 0
        print(authoring.describe(current_if_stored(settings.database_url, story)))
        return 0
    if args.action == "rebuild":
        from monitor.db.story_models import rebuild

        with open_store(settings) as store:
            rebuilt, changed = rebuild(store, story, reason="stories rebuild", dry_run=args.dry_run)
        print(render_rebuild(story, rebuilt, changed, dry_run=args.dry_run))
        return 0
    if args.action == "test":
        print(render_test(*test_story(settings, story, args.source)))
        return 0
    return _backfill(settings, story, args)


def test_story(settings: Settings, story: Any, source: str) -> tuple[Any, Any, tuple[Any, Any, Any]]:
    """The article at `source` as read, the story as its current version decides (enabled), and
    the matcher's explanation: (result, rules, candidate)."""
    from dataclasses import replace

    from monitor.db.story_models import current_if_stored
    from monitor.matching import Matcher, authoring

    story = replace(current_if_stored(settings.database_url, story), enabled=True)
    read = authoring.read_article(source, settings.fetch)
    return read, story, Matcher([story]).explain(read.article, story.id)


def _backfill(settings: Settings, story: Any, args: argparse.Namespace) -> int:
    from monitor.backfill import backfill
    from monitor.db.story_models import rebuild

    with open_store(settings) as store, StatusLine() as status:
        if args.keep_version:
            from monitor.db.story_models import current_stories

            [story], changed = current_stories(store, [story]), False
        else:
            # The story's next version (learned names and judgments read again), recorded only when applied.
            story, changed = rebuild(store, story, reason="stories backfill", dry_run=args.dry_run)
        if changed:
            print(render_next_version(story, dry_run=args.dry_run))
        summary = backfill(store, story, since=args.since, until=args.until, dry_run=args.dry_run, progress=status)
    print(render_backfill(story, summary, dry_run=args.dry_run), end="")
    return 0


def story_versions(settings: Settings, story: Any) -> list[Any]:
    """The story's recorded model versions, newest first."""
    from monitor.db.story_models import versions

    with open_store(settings) as store:
        return list(versions(store, story.id))


class AddedStory(NamedTuple):
    story_id: str
    path: Path                   # the plugin file written
    folder: Path
    table: dict[str, Any]        # the story as written
    profile: Any                 # its reference profile
    query: str | None
    in_plugin_folder: bool       # whether the folder is searched for plugins already


def add_story(settings: Settings, args: argparse.Namespace) -> AddedStory:
    """Derive a story from its reference article and write it as a plugin file."""
    from monitor.matching import authoring
    from monitor.matching.loader import discover, project_plugin_dir

    story_id = authoring.check_story_id(args.id)
    if args.start and args.end and args.start >= args.end:
        raise ConfigError("--start must be earlier than --end")
    folder = (args.output or (settings.plugin_dirs[0] if settings.plugin_dirs else settings.base_dir / "plugins"))
    folder = folder.resolve()
    target = folder / f"{story_id}.toml"
    # The folder the story goes to may not exist yet: look for clashes in those that do.
    existing = discover([d for d in settings.plugin_dirs if d.is_dir()]).stories.get(story_id)
    if existing is not None and not (args.force and existing.origin.endswith(f"{folder.name}/{target.name}")):
        raise ConfigError(f"story {story_id!r} already exists ({existing.origin}); choose another ID"
                          f"{' or use --force' if existing.origin.endswith(target.name) else ''}")
    read = authoring.read_article(args.reference, settings.fetch)
    table, profile = authoring.new_story(story_id, read, title=args.title, query=args.query,
                                         start=args.start, end=args.end)
    path = authoring.write_story(table, folder, force=args.force, source=read.source)
    project = project_plugin_dir()
    searched = {p.resolve() for p in settings.plugin_dirs} | ({project.resolve()} if project else set())
    return AddedStory(story_id, path, folder, table, profile, args.query, folder in searched)


def cmd_rules(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.matching import list_rules

    print(f"{'RULE':24} {'VERSION':8} ORIGIN")
    for r in list_rules(plugin_dirs=settings.plugin_dirs):
        print(f"{r.name:24} {r.version:8} {r.origin}")
    return 0


# -- rendering ------------------------------------------------------------------------------

def render_story_list(stories: list[Any]) -> str:
    if not stories:
        return "no stories configured: add [[stories]] tables to the config (see config.example.toml)\n"
    return "".join(f"{s.id}{'' if s.enabled else ' (disabled)'}\n    {s.title}\n    window {_window(s)}\n"
                   for s in stories)


def _window(story: Any) -> str:
    start, end = getattr(story, "start", None), getattr(story, "end", None)
    if start is None and end is None:
        return "open-ended"
    return f"{f'{start:%Y-%m-%d}' if start else 'any time'} to {f'{end:%Y-%m-%d}' if end else 'now'}"


def render_rebuild(story: Any, rebuilt: Any, changed: bool, *, dry_run: bool) -> str:
    if not changed:
        return f"story {story.id}: version {rebuilt.version} is current; nothing new was learned or judged"
    return (f"story {story.id}: {'would make' if dry_run else 'made'} version {rebuilt.version} "
            f"({plural(len(rebuilt.learned), 'learned name')}, {plural(len(rebuilt.judged), 'judgment')})"
            f"{'; nothing written (dry run)' if dry_run else ''}")


def render_test(read: Any, story: Any, explained: tuple[Any, Any, Any]) -> str:
    from monitor.matching import authoring

    result, rules, candidate = explained
    return (f"article: {read.article.title or '(no title)'}\n  {read.source}, published "
            f"{read.article.published.date().isoformat() if read.article.published else 'unknown'}, "
            f"{len(read.article.body.split())} words\n"
            + authoring.explain(story, result, rules, candidate))


def render_next_version(story: Any, *, dry_run: bool) -> str:
    return (f"story {story.id}: {'the next version would be' if dry_run else 'new version'} {story.version} "
            f"({plural(len(story.learned), 'learned name')}, {plural(len(story.judged), 'judgment')})")


def render_backfill(story: Any, summary: Any, *, dry_run: bool) -> str:
    verb = ("would add", "would remove", "would refresh") if dry_run else ("added", "removed", "refreshed")
    lines = [f"story {story.id}: {plural(summary.scanned, 'stored article')} scored; {verb[0]} {plural(summary.added, 'match')}, "
             f"{verb[1]} {summary.removed}, {verb[2]} {summary.updated} that still hold"]
    for heading, samples in ((verb[0], summary.added_samples), (verb[1], summary.removed_samples)):
        for c in samples:
            old = f"{c.old_score:.3f}" if c.old_score is not None else "none"
            lines.append(f"  {heading}: {c.title or '(no title)'}\n      {c.url}  score {old} -> {c.new_score:.3f}")
    if dry_run:
        lines.append("dry run: nothing was written; run again without --dry-run to apply")
    return "\n".join(lines) + "\n"


def render_versions(story: Any, found: list[Any]) -> str:
    """`stories show --versions`: each version, newest first, with what changed from the one before."""
    if not found:
        return f"story {story.id}: no version recorded yet (the first pass or command that matches records one)\n"
    lines = [f"story {story.id}: {len(found)} versions, newest first"]
    for older, v in zip([*found[1:], None], found):
        changes = [v.reason]
        if older is not None:
            if v.definition != older.definition:
                changes.append("definition edited")
            gained = [n for n in v.learned if n not in older.learned]
            lost = [n for n in older.learned if n not in v.learned]
            if gained or lost:
                changes.append("learned " + ", ".join([*(f"+{n}" for n in gained), *(f"-{n}" for n in lost)]))
            judged = len(set(v.judgments.items()) - set(older.judgments.items()))
            if judged:
                changes.append(f"{judged} new judgments")
        lines.append(f"  {v.version}  {v.created_at:%Y-%m-%d %H:%M} UTC  {'; '.join(changes)}")
    return "\n".join(lines) + "\n"


def render_added(added: AddedStory) -> str:
    """`stories add`: what was written, and how to track the story."""
    story_id, table, profile, folder = added.story_id, added.table, added.profile, added.folder
    lines = [f"wrote {added.path}\n  title   {table['title']}\n  window  {table.get('start', 'any time')} to "
             f"{table.get('end', 'open')}"]
    for entry in table.get("names", []):
        also = f" (also {', '.join(entry['aliases'])})" if entry.get("aliases") else ""
        lines.append(f"  name    {entry['name']}{also}")
    lines.append(f"  terms   {', '.join(list(profile.terms)[:12])} ({len(profile.terms)} in all)")
    lines.append(f"  anchors {', '.join(table['anchors'])} ({table['anchors_needed']} needed)")
    if added.query:
        lines.append(f"  query   {added.query} (required)")
    if not added.in_plugin_folder:
        lines.append(f"\n{folder} is not a plugin folder yet: add it to the config,\n  [plugins]\n  paths = [\"{folder}\"]")
    lines.append(f"\nto track it, add to the config:\n  [[stories]]\n  id = \"{story_id}\"\n"
                 f"then `monitor stories show {story_id}`, `monitor stories test {story_id} URL|FILE`, and "
                 f"`monitor stories backfill {story_id} --dry-run` for the articles already stored")
    return "\n".join(lines) + "\n"
