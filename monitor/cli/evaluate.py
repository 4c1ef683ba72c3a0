"""`monitor eval`: score a story on a labelled corpus, or cross-validate it on its own judged articles."""
from __future__ import annotations

import argparse
from typing import Any

from monitor.cli.common import enabled_stories, open_store, story_named
from monitor.config import Settings
from monitor.exceptions import ConfigError, MonitorError
from monitor.progress import StatusLine
from monitor.wording import plural


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    stories = enabled_stories(settings)
    if not stories:
        raise ConfigError("no enabled story to evaluate")
    story_id = args.story or stories[0].id
    if args.judgments:
        report = evaluate_judgments(settings, story_named(settings, story_id))
    else:
        report = evaluate_on_corpus(settings, stories, story_id, args.corpus)
    print(report.format())
    return 0


def evaluate_on_corpus(settings: Settings, stories: list[Any], story_id: str, corpus: Any) -> Any:
    """The report of `story_id` scored on the labelled `corpus`, as its current version decides."""
    from monitor.corpus import read_corpus
    from monitor.matching import evaluate_corpus

    if story_id not in {s.id for s in stories}:
        raise ConfigError(f"no enabled story {story_id!r}; enabled: {', '.join(sorted(s.id for s in stories))}")
    rows = read_corpus(corpus)     # every row checked first: a bad one is named by its line
    from monitor.db.story_models import current_if_stored

    # As the story's current version decides, when the database holds one (what the daemon uses).
    stories = [current_if_stored(settings.database_url, s) if s.id == story_id else s for s in stories]
    with StatusLine() as status:
        status(f"scoring {story_id} on {plural(len(rows), 'article')} of {corpus}")
        return evaluate_corpus(corpus, stories, story_id)


def evaluate_judgments(settings: Settings, story: Any) -> Any:
    """The cross-validation report of `story` on its own judged articles."""
    from dataclasses import replace

    from monitor.db.story_models import current_stories, judged_articles
    from monitor.matching.crossval import TooFewJudgments, cross_validate

    with open_store(settings) as store:
        # The current version's learned names, the profile as defined: the folds move it themselves.
        [current] = current_stories(store, [story], record=False)
        judged = judged_articles(store, story.id)
    try:
        return cross_validate(replace(current, terms=story.terms), judged)
    except TooFewJudgments as e:
        raise MonitorError(str(e)) from None
