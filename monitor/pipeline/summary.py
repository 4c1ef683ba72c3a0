"""What a pass did (`PassSummary`), and the progress lines a long pass prints as it goes."""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.wording import plural

_COUNTS = ("feeds", "feeds_ok", "feeds_not_modified", "feeds_failed", "new_entries", "new_articles",
           "from_feed_text", "pages_failed", "new_matches", "rule_errors", "extractions_abandoned",
           "entries_deferred", "feeds_leased_elsewhere")


@dataclass
class PassSummary:
    """What a pass did; `line()` is the one-line summary printed at the end of `run --once`."""

    feeds: int = 0
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    new_entries: int = 0
    new_articles: int = 0
    from_feed_text: int = 0
    pages_failed: int = 0
    new_matches: int = 0
    rule_errors: int = 0
    extractions_abandoned: int = 0
    entries_deferred: int = 0     # new entries over fetch.max_new_entries, left for later checks
    feeds_leased_elsewhere: int = 0   # left to the other daemons that hold them (PostgreSQL)
    stopped: bool = False
    seconds: float = 0.0
    matches_by_story: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: PassSummary) -> None:
        """Count `other` in too (several ingests summed up as one)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        for story, n in other.matches_by_story.items():
            self.matches_by_story[story] += n

    def line(self) -> str:
        stories = ", ".join(f"{k} {v}" for k, v in sorted(self.matches_by_story.items()))
        tail = [text for count, text in (
            (self.rule_errors, plural(self.rule_errors, "rule error")),
            (self.extractions_abandoned, plural(self.extractions_abandoned, "extraction") + " abandoned"),
            (self.entries_deferred, plural(self.entries_deferred, "new entry", "new entries") + " left for later passes"),
            (self.feeds_leased_elsewhere, plural(self.feeds_leased_elsewhere, "feed") + " left to the daemons holding them"),
        ) if count]
        return (f"{'stopped' if self.stopped else 'pass done'} in {self.seconds:.1f}s: feeds {self.feeds_ok} ok, "
                f"{self.feeds_not_modified} unchanged, {self.feeds_failed} failed; {plural(self.new_articles, 'new article')}"
                f"{f' ({self.from_feed_text} from feed text)' if self.from_feed_text else ''}, "
                f"{plural(self.pages_failed, 'page')} failed; {plural(self.new_matches, 'new match')}"
                f"{f' ({stories})' if stories else ''}"
                + "".join("; " + text for text in tail))


class Ticker:
    """Progress lines for long passes: at most one every few seconds."""

    def __init__(self, sink: Callable[[str], None] | None, feeds: int, every: float = 3.0) -> None:
        self.sink, self.feeds, self.every = sink, feeds, every
        self.feeds_done = self.pages = 0
        self.last = time.monotonic()

    def feed_done(self) -> None:
        self.feeds_done += 1

    def page_queued(self) -> None:
        self.pages += 1

    def maybe_report(self, summary: PassSummary) -> None:
        if self.sink is None or time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        self.sink(f"feeds {self.feeds_done}/{self.feeds}, pages {summary.new_articles + summary.pages_failed}"
                  f"/{self.pages}, {plural(summary.new_articles, 'new article')}, {plural(summary.new_matches, 'new match')}")
