"""Stories derived from one reference article, for three kinds of story (politics, a disaster, a
crime), each with its own fixture reference and articles in tests/data/stories/:

- `core`: plainly about the story;
- `peripheral`: about an event of the story (a market moved by the treaty, the insurers after the
  flood, dealers warned of the stolen paintings) that names its actors once, late or by short form;
- `other-language`: the story, written in another language than the reference;
- `later-story`: the same actors in a later, different story, outside the window;
- `other-story`: the same actors, in the window, in another story.

Nothing in the matcher knows these stories: they are derived as `monitor stories add` does.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor._types import Article
from monitor.matching.authoring import new_story, read_article
from monitor.matching.calibration import expected_calibration_error, reliability
from monitor.matching.loader import StoryError, load_stories, parse_story
from monitor.matching.matcher import Matcher
from monitor.matching.text import CALENDAR_WORDS, fold

STORIES = Path(__file__).parent / "data" / "stories"
WINDOWS = {"politics": ("2023-09-01", "2024-03-31"), "disaster": ("2024-04-14", "2024-09-30"),
           "crime": ("2022-11-17", "2023-06-30")}
# What a person reading each reference would list as its people and places (short forms after "/").
EXPECTED_NAMES = {
    "politics": ["Elena Marchetti/Marchetti", "Tomas Okonkwo/Okonkwo", "Port Aldine/Aldine", "Kesmar", "Valdoria",
                 "Ruud Brandt/Brandt"],
    "disaster": ["Ana Ruiz/Ruiz", "Brekka", "Halvard", "Serin"],
    "crime": ["Claire Beaumont/Beaumont", "Frans Hals/Hals", "Dunmore", "Otto Kellerman/Kellerman"],
}
EXPECTED_ANCHORS = {"politics": {"accord", "treaty", "border"}, "disaster": {"dam", "flooded", "brekka"},
                    "crime": {"paintings", "museum", "thieves"}}
# Same actors, same weeks, another story: lexically close to the reference (similarity about 0.14,
# at the model's threshold), so the calibrated score says "about even" and these still match.
KNOWN_FALSE_ALARMS = {("politics", "other-story"), ("disaster", "other-story")}


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _derived(kind: str) -> dict:
    start, end = WINDOWS[kind]
    read = read_article(str(STORIES / f"{kind}-reference.txt"), None)
    table, _ = new_story(kind, read, start=_utc(start), end=_utc(end))
    return table


def _rows(kind: str) -> list[dict]:
    return [json.loads(line) for line in (STORIES / f"{kind}-articles.jsonl").read_text(encoding="utf-8").splitlines()]


def _article(row: dict) -> Article:
    when = datetime.fromisoformat(row["published"])
    return Article(url=row["id"], final_url=row["id"], feed_url="", title=row["title"], body=row["body"],
                   fetched_at=when, published=when, lang=row["lang"])


@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_names_aliases_and_anchors_a_person_would_accept(kind: str) -> None:
    table = _derived(kind)
    names = {entry["name"]: entry.get("aliases", []) for entry in table["names"]}
    for expected in EXPECTED_NAMES[kind]:
        name, _, short = expected.partition("/")
        assert name in names, (name, names)
        if short:
            assert short in names[name], (name, names[name])
    for name in names:
        words = name.split()
        assert fold(words[0]) not in {"president", "governor", "inspector", "detective", "prime", "the"}, name
        assert not any(fold(w) in CALENDAR_WORDS for w in words), name
        assert " of " not in name, name    # "Elena Marchetti of Valdoria" is two names
    assert EXPECTED_ANCHORS[kind] <= set(table["anchors"]), table["anchors"]
    # The window is the one given; the last day is inside it.
    assert (table["start"], table["end"]) == WINDOWS[kind]


def _cases() -> list:
    cases = []
    for kind in sorted(WINDOWS):
        for row in _rows(kind):
            marks = ([pytest.mark.xfail(strict=True, reason="same actors and setting in the window: "
                                        "the lexical similarity cannot tell this story from the other")]
                     if (kind, row["kind"]) in KNOWN_FALSE_ALARMS else [])
            cases.append(pytest.param(kind, row, id=f"{kind}-{row['kind']}", marks=marks))
    return cases


@pytest.mark.parametrize(("kind", "row"), _cases())
def test_derived_story_decides_what_the_article_is_about(kind: str, row: dict) -> None:
    story = parse_story(_derived(kind), origin="test")
    result, rules, _ = Matcher([story]).explain(_article(row), story.id)
    assert result.matched == (row["label"] == "on"), (result.score, result.evidence)
    if row["kind"] == "later-story":
        # Vetoed by the window, not by the words: the later story shares plenty of them.
        assert rules["window"].score == 0.0 and rules["reference"].details["similarity"] > 0.3
    if row["kind"] == "other-language":
        assert any(e.startswith(f"written in {row['lang']}, the reference in en") for e in result.evidence), \
            result.evidence


def test_a_derived_story_s_matcher_skips_articles_without_two_anchors() -> None:
    story = parse_story(_derived("crime"), origin="test")
    matcher = Matcher([story])
    unrelated = Article(url="u", final_url="u", feed_url="", title="Harvest festival draws record crowds",
                        body="Farmers brought pumpkins and cider to the square. The brass band played all afternoon.",
                        fetched_at=_utc("2022-12-01"), published=_utc("2022-12-01"), lang="en")
    assert matcher.match(unrelated) == []
    assert [r.story_id for r in matcher.match(_article(_rows("crime")[0]))] == ["crime"]


def _renamed(text: str, table: dict) -> str:
    """`text` with every word of the story's names spelled otherwise: the same prose about others."""
    words = {fold(w) for entry in table["names"] for n in (entry["name"], *entry.get("aliases", []))
             for w in re.findall(r"[^\W_]+", n)}
    return re.sub(r"[^\W_]+", lambda m: "Zorvanek" if fold(m.group()) in words else m.group(), text)


@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_the_reference_s_prose_about_other_people_and_places_is_another_story(kind: str) -> None:
    # The reference itself, its names swapped for another's: every everyday word is shared, so
    # the similarity alone would match it; the required names rule says it is another story.
    table = _derived(kind)
    assert {"name": "names", "required": True, "weight": 0.0} in table["rules"]
    story = parse_story(table, origin="test")
    matcher = Matcher([story])
    title, _, body = (STORIES / f"{kind}-reference.txt").read_text(encoding="utf-8").strip().partition("\n")
    when = _utc(WINDOWS[kind][0])
    original = Article(url="o", final_url="o", feed_url="", title=title, body=body, fetched_at=when, published=when,
                       lang="en")
    other = Article(url="x", final_url="x", feed_url="", title=_renamed(title, table), body=_renamed(body, table),
                    fetched_at=when, published=when, lang="en")
    assert [r.matched for r in matcher.match(original)] == [True]
    result, rules, candidate = matcher.explain(other, story.id)
    assert rules["reference"].details["similarity"] > 0.3 and not result.matched and not result.near_miss
    assert rules["names"].score == 0.0
    assert rules["names"].evidence == ("names none of the story's people, places or organisations",)
    # The prefilter knows it: the article is not even a candidate, so many stories cost it nothing.
    assert not candidate and matcher.match(other) == []


def test_the_names_rule_counts_names_and_aliases_not_a_weak_alias_alone() -> None:
    story = parse_story({"id": "s", "title": "S", "names": [{"name": "Kim Jong Un", "aliases": ["Kim Jong-un"],
                                                            "weak": ["Kim"]}, "Singapore"],
                         "rules": [{"name": "names", "required": True, "weight": 0.0},
                                   {"name": "query", "weight": 1.0, "params": {"query": "summit"}}]}, origin="test")
    matcher = Matcher([story])
    when = _utc("2018-06-12")

    def names_rule(text: str) -> tuple[float, tuple[str, ...], bool]:
        article = Article(url=text, final_url=text, feed_url="", title=text, body=text, fetched_at=when)
        _, rules, candidate = matcher.explain(article, "s")
        return rules["names"].score, rules["names"].evidence, candidate

    assert names_rule("Kim Jong-un arrives for the summit") == (1.0, ("names Kim Jong Un",), True)
    assert names_rule("Kim and Moon at the summit in Singapore") == (1.0, ("names Singapore",), True)
    assert names_rule("Kim and Moon at the summit")[:2] == (0.0, ("names none of the story's people, places or "
                                                                  "organisations",))
    with pytest.raises(StoryError, match="story 't': rule 'names' .*: the story has no names or places"):
        load_stories([{"id": "t", "title": "T", "rules": [{"name": "names", "required": True}]}])


def test_reliability_bins_and_calibration_error() -> None:
    scores = [0.05, 0.05, 0.15, 0.85, 0.95, 0.95, 1.0]
    labels = [False, False, True, True, True, False, True]
    bins = reliability(scores, labels)
    assert [(b.low, b.count) for b in bins] == [(0.0, 2), (0.1, 1), (0.8, 1), (0.9, 3)]
    assert bins[-1].observed == pytest.approx(2 / 3) and bins[-1].mean_score == pytest.approx(2.9 / 3)
    expected = (2 * 0.05 + 1 * 0.85 + 1 * 0.15 + 3 * abs(2.9 / 3 - 2 / 3)) / 7
    assert expected_calibration_error(scores, labels) == pytest.approx(expected)
    assert expected_calibration_error([], []) == 0.0


def test_eval_prints_the_reliability_of_a_derived_story(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[database]\nurl = "sqlite:///monitor.db"\n[plugins]\npaths = ["plugins"]\n'
                      '[[stories]]\nid = "heist"\n', encoding="utf-8")

    def monitor(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), *args], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        return p.stdout

    monitor("stories", "add", "heist", "--reference", str(STORIES / "crime-reference.txt"),
            "--start", WINDOWS["crime"][0], "--end", WINDOWS["crime"][1])
    out = monitor("eval", "--corpus", str(STORIES / "crime-articles.jsonl"), "--story", "heist")
    rows = _rows("crime")
    assert f"{sum(r['label'] == 'on' for r in rows)} on, {sum(r['label'] == 'off' for r in rows)} off" in out
    assert "reliability" in out and "precision 1.000  recall 1.000" in out, out
    ece = float(re.search(r"expected calibration error \(ECE\) ([0-9.]+)", out).group(1))
    # Every row decided right, most with a confident score: the scores read as probabilities.
    assert ece <= 0.10, out
