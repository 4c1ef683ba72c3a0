"""The shipped summit story on fixture articles written for these tests, and on its reference."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor._types import Article, MatchResult
from monitor.matching import Matcher, load_stories

ARTICLES = Path(__file__).parent / "data" / "articles"
REFERENCE = Path("/work/shared/reference/i-want-you-to-want-me.txt")
STORY = "trump-kim-summit-2018"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_stories([{"id": STORY}]))


def _article(name: str, **changes: object) -> tuple[Article, str]:
    data = json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))
    published = datetime.fromisoformat(data["published"])
    article = Article(url=f"https://news.test/{name}", final_url=f"https://news.test/{name}",
                      feed_url="https://news.test/rss", title=data["title"], body=data["body"],
                      summary=data["summary"], fetched_at=published, published=published, lang=data["lang"])
    return replace(article, **changes), data["label"]


def _verdict(matcher: Matcher, article: Article) -> MatchResult | None:
    return next((r for r in matcher.match(article) if r.story_id == STORY), None)


ON = ["on-cancellation-letter", "on-revival", "on-summit-day", "on-aftermath", "on-korean"]
OFF = ["neg-kardashian", "neg-hanoi-2019", "neg-fire-and-fury", "neg-g7-quebec", "neg-iran-deal",
       "neg-singapore-local"]


@pytest.mark.parametrize("name", ON)
def test_on_topic_articles_match_with_evidence(matcher: Matcher, name: str) -> None:
    article, label = _article(name)
    assert label == "on"
    result = _verdict(matcher, article)
    assert result is not None and result.matched, result
    assert 0.5 <= result.score <= 1.0
    assert any("inside the story window" in e for e in result.evidence)
    assert any("paragraphs" in e and "about the story" in e for e in result.evidence)
    assert set(result.rule_versions) == {"window", "title", "lead", "coverage", "reference"}
    assert result.best_passage and result.best_passage in article.body


@pytest.mark.parametrize("name", OFF)
def test_hard_negatives_do_not_match(matcher: Matcher, name: str) -> None:
    article, label = _article(name)
    assert label == "off"
    result = _verdict(matcher, article)
    assert result is None or not result.matched, result


def test_prefilter_skips_articles_that_cannot_match(matcher: Matcher) -> None:
    article, _ = _article("neg-singapore-local")
    assert matcher.match(article) == []


def test_outside_window_vetoes_even_a_perfect_article(matcher: Matcher) -> None:
    article, _ = _article("on-summit-day", published=datetime(2019, 2, 27, tzinfo=UTC))
    assert _verdict(matcher, article) is None     # vetoed by the window, so not even evaluated
    result, _, candidate = matcher.explain(article, STORY)
    assert candidate and not result.matched and result.score == 0.0
    assert "published 2019-02-27, outside the story window" in result.evidence


def test_brief_mention_is_measured_as_a_small_share(matcher: Matcher) -> None:
    article, label = _article("brief-mention")
    assert label == "brief"
    result = _verdict(matcher, article)
    assert result is not None
    coverage = result.details["coverage"]
    assert coverage["on_story"] == 1 and coverage["paragraphs"] == 5
    assert coverage["score"] < 0.25   # one paragraph of five is a passing mention
    assert not result.matched


def test_reference_article_matches_its_own_story(matcher: Matcher) -> None:
    if not REFERENCE.exists():
        pytest.skip(f"reference text not available at {REFERENCE}")
    title, _, body = REFERENCE.read_text(encoding="utf-8").partition("\n")
    published = datetime(2018, 5, 25, 16, 0, tzinfo=UTC)
    article = Article(url="https://reference.test/a", final_url="https://reference.test/a", feed_url="",
                      title=title.strip(), body=body.strip(), fetched_at=published, published=published)
    result = _verdict(matcher, article)
    assert result is not None and result.matched and result.score > 0.9
    similarity = result.details["reference"]["similarity"]
    assert similarity > 0.5


def test_reference_override_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "ref.txt").write_text("Trump and Kim Jong Un agreed on a summit in Singapore.\n\n"
                                      "The summit with North Korea will discuss denuclearization.",
                                      encoding="utf-8")
    [story] = load_stories([{"id": STORY, "reference": {"url": "https://x.test/r", "path": "ref.txt"},
                             "threshold": 0.7}], base_dir=tmp_path)
    assert story.threshold == 0.7 and story.reference is not None
    assert story.reference.url == "https://x.test/r"
    assert "denuclearization" in story.terms and "cancelation" not in story.terms
