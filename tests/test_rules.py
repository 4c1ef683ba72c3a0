"""Built-in rules one by one, and the isolation of a rule that raises."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor._types import Article
from monitor.matching import Document, Facet, Matcher, Name, RuleResult, RuleSpec, Story
from monitor.matching.rules import CoverageRule, LeadRule, QueryRule, ReferenceRule, TitleRule, WindowRule

UTC = UTC

STORY = Story(
    id="visit", title="A state visit",
    start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2020, 1, 31, 23, 59, tzinfo=UTC),
    names=(Name("Ada Lovelace", ("Lovelace",), weak=("Ada",)),),
    facets=(Facet("host", ("Ada Lovelace",)), Facet("guest", ("Charles Babbage", "Babbage")),
            Facet("event", ("visit", "besuch*"))),
    terms={"engine": 1.0, "analytical": 0.8, "visit": 0.5},
    rules=(RuleSpec("coverage"), RuleSpec("title")),
)


def doc(title: str = "", body: str = "", summary: str = "", published: datetime | None = None) -> Document:
    return Document(url="https://t.test/a", title=title, body=body, summary=summary, published=published)


def test_window_inside_outside_and_undated() -> None:
    rule = WindowRule(STORY, {})
    inside = rule.evaluate(doc(published=datetime(2020, 1, 5, tzinfo=UTC)))
    outside = rule.evaluate(doc(published=datetime(2020, 2, 1, tzinfo=UTC)))
    undated = rule.evaluate(doc())
    assert (inside.score, outside.score, undated.score) == (1.0, 0.0, 1.0)
    assert outside.evidence == ("published 2020-02-01, outside the story window",)


def test_title_names_facets_and_summary_counts_half() -> None:
    rule = TitleRule(STORY, {})
    assert rule.evaluate(doc(title="Lovelace receives Babbage for a visit")).score == 1.0
    result = rule.evaluate(doc(title="Weather", summary="Lovelace and Babbage: a visit"))
    assert result.score == pytest.approx(0.5)
    assert rule.evaluate(doc(title="Lovelace receives Babbage")).evidence == (
        "title names Ada Lovelace and Babbage",)   # the entry that was found


def test_coverage_share_partial_and_floor() -> None:
    body = "\n\n".join([
        "Ada Lovelace and Charles Babbage began the visit at noon.",   # all three facets
        "Babbage talked of his engine during the visit.",              # two of three: partial
        "The weather was mild.",
        "Tea was served.",
    ])
    result = CoverageRule(STORY, {"full_at": 0.5}).evaluate(doc(body=body))
    assert result.details["on_story"] == 1 and result.details["partial"] == 1
    assert result.details["share"] == pytest.approx((1 + 0.25) / 4, abs=1e-3)
    assert result.score == pytest.approx(0.3125 / 0.5)
    assert result.evidence == ("1 of 4 paragraphs (25%) are about the story",)
    assert result.passage == "Ada Lovelace and Charles Babbage began the visit at noon."
    floored = CoverageRule(STORY, {"floor": 0.4, "full_at": 0.8}).evaluate(doc(body=body))
    assert floored.score == 0.0


def test_weak_alias_counts_only_beside_a_strong_one() -> None:
    rule = CoverageRule(STORY, {})
    alone = rule.evaluate(doc(body="Ada met Babbage for a visit."))
    assert alone.details["on_story"] == 0
    backed = rule.evaluate(doc(body="Ada met Babbage for a visit.\n\nLovelace later wrote notes."))
    assert backed.details["on_story"] == 1


def test_prefix_alias_matches_german_compounds() -> None:
    result = LeadRule(STORY, {}).evaluate(doc(title="Lovelace empfängt Babbage zum Staatsbesuch"))
    assert result.score == 0.0   # "staatsbesuch" does not start with "besuch"
    result = LeadRule(STORY, {}).evaluate(doc(title="Lovelace: Besuchsprogramm für Babbage"))
    assert result.score == 1.0


def test_reference_similarity_is_bounded_and_ordered() -> None:
    rule = ReferenceRule(STORY, {"full_at": 0.5})
    close = rule.evaluate(doc(body="The analytical engine was shown during the visit."))
    far = rule.evaluate(doc(body="Football results from the weekend."))
    assert 0.0 < close.score <= 1.0 and far.score == 0.0
    assert close.evidence[0].startswith("reference similarity 0.")


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="full_at"):
        CoverageRule(STORY, {"full_at": 2})
    with pytest.raises(ValueError, match="unknown parameter"):
        TitleRule(STORY, {"colour": "red"})
    with pytest.raises(ValueError):
        RuleResult(1.5)


def test_query_rule_uses_the_query_language() -> None:
    rule = QueryRule(STORY, {"query": '"analytical engine" AND visit'})
    assert rule.evaluate(doc(title="A visit", body="The Analytical Engine was shown.")).score == 1.0
    assert rule.evaluate(doc(title="A visit", body="The engine was shown.")).score == 0.0


class ExplodingRule:
    name = "exploding"
    version = "0.1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        pass

    def evaluate(self, doc: Document) -> RuleResult:
        raise RuntimeError("boom")


def test_a_raising_rule_is_logged_counted_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    story = Story(id="visit", title="A state visit", facets=STORY.facets, names=STORY.names, bias=-1.0,
                  rules=(RuleSpec("exploding", factory=ExplodingRule, weight=5.0),
                         RuleSpec("coverage", factory=CoverageRule, weight=4.0)))
    matcher = Matcher([story])
    now = datetime(2020, 1, 2, tzinfo=UTC)
    article = Article(url="https://t.test/boom", final_url="https://t.test/boom", feed_url="", fetched_at=now,
                      title="Visit", body="Ada Lovelace received Charles Babbage for a visit.")
    with caplog.at_level(logging.ERROR, logger="monitor.matching"):
        [result] = matcher.match(article)
    assert matcher.rule_errors == 1
    assert result.matched and result.details["exploding"]["error"] is True
    assert result.rule_versions == {"exploding": "0.1", "coverage": "1"}
    message = caplog.records[0].getMessage()
    assert "'exploding'" in message and "'visit'" in message and "https://t.test/boom" in message
