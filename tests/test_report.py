"""The digest model and its five formats, including hostile web text in every one of them."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from monitor._types import StoredMatch, StoredNearMiss
from monitor.report import FORMATS, Digest, StoryInfo, build_digest, render
from monitor.report.digest import highlight, highlight_terms
from monitor.report.render_text import sparkline

UTC = UTC
T0 = datetime(2018, 5, 24, 14, 5, tzinfo=UTC)
SUMMIT = StoryInfo("trump-kim-summit-2018", "Trump–Kim summit, 2018",
                   reference_url="https://reference.example/i-want-you", description="The 2018 summit.")
EMPTY = StoryInfo("quiet-story", "A story nobody covered")
GENERATED = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")

WIRE = ("WASHINGTON (Wire) - President Donald Trump on Thursday called off his planned summit in "
        "Singapore with North Korean leader Kim Jong Un, citing the open hostility of a recent "
        "statement from Pyongyang, in a letter released by the White House in the morning.\n\n"
        "The letter said it would be inappropriate at this time to hold the long-planned meeting, "
        "but left the door open to talks later and asked Kim to call or write if he changed his mind.")
OTHER = ("Analysis - The cancelled meeting leaves allies guessing. Officials in Tokyo and Seoul spent "
         "the day trying to work out what the decision means for sanctions, for the troops stationed "
         "on the peninsula and for the talks that had seemed so close only a week ago.")


def match(url: str, *, minutes: int = 0, outlet: str | None = "Example News", title: str = "Trump cancels summit",
          body: str = WIRE, score: float = 0.9, evidence: tuple[str, ...] = ("title: summit, Kim Jong Un",),
          published: bool = True, story_id: str = SUMMIT.id, lang: str | None = "en",
          best_passage: str | None = None) -> StoredMatch:
    when = T0 + timedelta(minutes=minutes)
    return StoredMatch(
        story_id=story_id, score=score, evidence=evidence, matched_at=when, article_id=0, url=url,
        canonical_url=url, feed_url="https://feeds.example/rss", title=title, outlet=outlet,
        published=when if published else None, fetched_at=when, lang=lang, body=body,
        best_passage=best_passage,
    )


def sample_matches() -> list[StoredMatch]:
    return [
        match("https://news.example/2018/05/24/trump-cancels-summit", score=0.91),
        match("https://herald.example/world/summit-off", minutes=40, outlet="The Herald",
              title="Summit off, Trump tells Kim", score=0.85),
        match("https://post.example/analysis", minutes=90, outlet="The Post", title="Allies guessing",
              body=OTHER, score=0.6, published=False, lang="fr"),
    ]


def digest(matches: list[StoredMatch], *, stories: tuple[StoryInfo, ...] = (SUMMIT, EMPTY),
           since: datetime | None = datetime(2018, 3, 1, tzinfo=UTC),
           until: datetime | None = datetime(2018, 8, 1, tzinfo=UTC)) -> Digest:
    return build_digest(stories, matches, since=since, until=until, generated_at=GENERATED)


# --- the model ------------------------------------------------------------------------------

def test_every_story_appears_in_the_order_given_even_without_matches() -> None:
    d = digest(sample_matches())
    assert [s.story.id for s in d.stories] == [SUMMIT.id, EMPTY.id]
    assert d.stories[1].matches == () and d.stories[1].coverage == ()
    assert d.stories[1].figures.first is None


def test_window_is_half_open_on_published_else_first_seen() -> None:
    since = T0
    inside = match("https://a.example/in", minutes=0)
    undated_inside = match("https://a.example/undated", minutes=5, published=False, body=OTHER)
    at_until = match("https://a.example/out", minutes=60, body=OTHER + " later")
    other_story = match("https://a.example/other", story_id="unknown-story")
    d = digest([inside, undated_inside, at_until, other_story], since=since, until=since + timedelta(hours=1))
    assert [m.url for m in d.stories[0].matches] == [inside.url, undated_inside.url]


def test_copies_are_shown_once_with_the_other_outlets_and_the_first_copy() -> None:
    d = digest(sample_matches())
    story = d.stories[0]
    assert story.figures.matches == 3 and story.figures.outlets == 3
    assert story.figures.texts == 2 and story.figures.clusters == 1
    assert story.figures.languages == ("en", "fr")
    top, second = story.coverage
    assert top.cluster_id is not None and second.cluster_id is None
    assert top.lead.url == "https://news.example/2018/05/24/trump-cancels-summit"
    assert top.first.url == top.lead.url
    assert top.also_carried_by == ("The Herald",)
    assert second.lead.outlet == "The Post"


def test_the_copy_shown_is_the_best_scored_and_the_first_is_recorded() -> None:
    early = match("https://wire.example/a", outlet="Wire", score=0.5)
    better = match("https://paper.example/a", minutes=30, outlet="Paper", score=0.95)
    (coverage,) = digest([early, better]).stories[0].coverage
    assert coverage.lead == better and coverage.first == early
    assert coverage.also_carried_by == ("Wire",)


def test_outlet_falls_back_to_the_host() -> None:
    d = digest([match("https://no-name.example/a", outlet=None)])
    assert d.stories[0].top_outlets == (("no-name.example", 1),)


def test_timeline_is_hourly_inside_a_short_window_and_daily_otherwise() -> None:
    matches = sample_matches()
    start = T0.replace(minute=0)
    short = digest(matches, since=start, until=start + timedelta(days=1)).stories[0].timeline
    assert short.unit == "hour"
    assert short.buckets == ((start, 2), (start + timedelta(hours=1), 1))
    later = match("https://late.example/a", minutes=2 * 24 * 60, body=OTHER + " again")
    long = digest([*matches, later]).stories[0].timeline
    assert long.unit == "day"
    assert [(t.day, n) for t, n in long.buckets] == [(24, 3), (25, 0), (26, 1)]


def test_timeline_stays_small_when_dates_are_absurd() -> None:
    ancient = match("https://a.example/old", body=OTHER)
    ancient = StoredMatch(**{**{f: getattr(ancient, f) for f in ancient.__slots__},
                             "published": datetime(1970, 1, 1, tzinfo=UTC)})
    timeline = digest([ancient, match("https://b.example/new")], since=None, until=None).stories[0].timeline
    assert timeline.unit == "year" and len(timeline.buckets) == 49


def test_evidence_terms_are_highlighted_as_whole_words() -> None:
    terms = highlight_terms(("title: summit, Kim Jong Un", "reference similarity 0.62", "the lead names talks",
                             'quotes "fire and fury"', "published 2018-05-24, inside the window"))
    assert set(terms) >= {"summit", "Kim Jong Un", "fire and fury", "talks"}
    assert not any(any(ch.isdigit() for ch in t) for t in terms)
    runs = highlight("The summits ended; the Summit with KIM JONG UN did not.", terms)
    assert [text for text, hit in runs if hit] == ["Summit", "KIM JONG UN"]
    assert "".join(text for text, _ in runs) == "The summits ended; the Summit with KIM JONG UN did not."


def test_passage_is_the_best_passage_else_the_first_paragraph() -> None:
    d = digest([match("https://a.example/1", best_passage="The best  passage\nabout the summit."),
                match("https://b.example/2", body=OTHER, minutes=1),
                match("https://c.example/3", title="Allies guessing", best_passage="Allies  guessing",
                      body="ALLIES GUESSING\n\n\n\nThe second paragraph.", minutes=2)])
    passages = {c.lead.url: "".join(t for t, _ in c.passage) for c in d.stories[0].coverage}
    assert passages["https://a.example/1"] == "The best passage about the summit."
    assert passages["https://b.example/2"] == OTHER
    assert passages["https://c.example/3"] == "The second paragraph."


# --- JSON --------------------------------------------------------------------------------------

def test_json_follows_the_contract() -> None:
    doc = json.loads(render(digest(sample_matches()), "json"))
    assert doc["generated_at"] == "2026-11-25T17:00:00+00:00"
    assert doc["since"] == "2018-03-01T00:00:00+00:00" and doc["until"] == "2018-08-01T00:00:00+00:00"
    summit, empty = doc["stories"]
    assert (summit["id"], summit["title"]) == (SUMMIT.id, SUMMIT.title)
    assert (empty["id"], empty["matches"]) == (EMPTY.id, [])
    required = {"url", "title", "outlet", "published", "score", "evidence", "cluster"}
    for m in summit["matches"]:
        assert required <= m.keys()
        assert isinstance(m["url"], str) and isinstance(m["title"], str)
        assert 0 <= m["score"] <= 1 and isinstance(m["evidence"], list)
        assert all(isinstance(e, str) for e in m["evidence"])
        assert m["published"] is None or ISO_WITH_OFFSET.match(m["published"])
    first, second, third = summit["matches"]
    assert first == {**first, "url": "https://news.example/2018/05/24/trump-cancels-summit",
                     "outlet": "Example News", "published": "2018-05-24T14:05:00+00:00", "score": 0.91,
                     "evidence": ["title: summit, Kim Jong Un"]}
    assert first["cluster"] == second["cluster"] and re.fullmatch(r"c-[0-9a-f]{8}", first["cluster"])
    assert third["cluster"] is None and third["published"] is None


def test_json_rounds_and_clamps_scores_and_allows_open_windows() -> None:
    d = digest([match("https://a.example/1", score=0.123456), match("https://b.example/2", body=OTHER, score=1.7),
                match("https://c.example/3", body="", score=float("nan"))], since=None, until=None)
    doc = json.loads(render(d, "json"))
    assert doc["since"] is None and doc["until"] is None
    assert sorted(m["score"] for m in doc["stories"][0]["matches"]) == [0.0, 0.123, 1.0]


def test_every_format_is_deterministic_whatever_the_input_order() -> None:
    matches = sample_matches()
    for fmt in FORMATS:
        assert render(digest(matches), fmt) == render(digest(matches[::-1]), fmt)


# --- text and Markdown ---------------------------------------------------------------------------

def test_text_shows_figures_sparkline_and_each_text_once() -> None:
    out = render(digest(sample_matches()), "text")
    assert "\x1b" not in out
    assert "3 matches from 3 outlets; 2 distinct texts, 1 carried by several outlets" in out
    assert out.count("Trump cancels summit") == 1
    assert "also carried by The Herald; first: Example News, 2018-05-24 14:05 UTC" in out
    assert "Reference: https://reference.example/i-want-you" in out
    assert "A story nobody covered" in out and "No coverage in this window." in out
    assert sparkline([0, 1, 4, 8]) == "▁▂▅█"


def test_text_colour_is_the_callers_choice() -> None:
    coloured = render(digest(sample_matches()), "text", color=True)
    assert "\x1b[1m" in coloured and "\x1b[33mKim Jong Un\x1b[0m" in coloured


def test_markdown_has_headings_a_figures_table_and_links() -> None:
    out = render(digest(sample_matches()), "markdown")
    assert out.startswith("# Media monitoring digest\n")
    assert "\n## Trump–Kim summit, 2018\n" in out and "\n## A story nobody covered\n" in out
    assert "| matches | outlets |" in out
    assert "[Trump cancels summit](<https://news.example/2018/05/24/trump-cancels-summit>)" in out
    assert "**Kim Jong Un**" in out


# --- CSV -------------------------------------------------------------------------------------------

def test_csv_has_one_row_per_match() -> None:
    rows = list(csv.reader(io.StringIO(render(digest(sample_matches()), "csv"))))
    assert rows[0] == ["story_id", "cluster", "url", "title", "outlet", "published", "score", "evidence", "via"]
    assert len(rows) == 4
    assert [row[8] for row in rows[1:]] == ["https://feeds.example/rss"] * 3    # where each article came from
    assert rows[1][:3] == [SUMMIT.id, rows[2][1], "https://news.example/2018/05/24/trump-cancels-summit"]
    assert rows[3][1] == "" and rows[3][5] == ""
    assert rows[1][6] == "0.91" and rows[1][7] == "title: summit, Kim Jong Un"


def test_csv_cells_cannot_start_a_formula() -> None:
    hostile = match("https://a.example/1", title='=HYPERLINK("https://evil.example","click")',
                    outlet="+cmd|' /C calc'!A0", evidence=("@SUM(1+1)", "-2+3"))
    row = list(csv.reader(io.StringIO(render(digest([hostile]), "csv"))))[1]
    assert row[3] == "'" + hostile.title and row[4] == "'+cmd|' /C calc'!A0"
    assert row[7] == "'@SUM(1+1) | -2+3"
    assert not any(cell[:1] in "=+-@" for cell in row if cell)


# --- hostile input ---------------------------------------------------------------------------------

HOSTILE_TITLE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
HOSTILE_URLS = ["javascript:alert(3)", " JaVaScRiPt:alert(4)", "data:text/html,<script>alert(5)</script>",
                "java\tscript:alert(6)", "https://ok.example/\"onmouseover=\"alert(7)"]


def hostile_digest() -> Digest:
    matches = [
        match(url, minutes=i, title=HOSTILE_TITLE, outlet="<iframe src=//evil.example>",
              body=f"</blockquote><script>alert({i})</script> summit <b onclick=alert(1)>x</b> {i}",
              evidence=("title: <svg onload=alert(8)>, summit",), lang="<x>", story_id="<s>")
        for i, url in enumerate(HOSTILE_URLS)
    ]
    story = StoryInfo("<s>", "<style>body{display:none}</style>", reference_url="javascript:alert(9)",
                      description="<a href=javascript:alert(10)>x</a>")
    return digest(matches, stories=(story,))


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_html_lets_no_markup_script_or_unsafe_link_through() -> None:
    out = render(hostile_digest(), "html")
    parser = _Elements()
    parser.feed(out)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code", "section", "table",
               "tr", "th", "td", "figure", "svg", "line", "rect", "text", "figcaption", "ol", "li", "a", "span",
               "div", "blockquote", "mark"}
    assert {tag for tag, _ in parser.tags} <= allowed
    assert sum(tag == "style" for tag, _ in parser.tags) == 1
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name not in {"src", "srcdoc", "formaction"}
            if name == "href":
                assert value is not None and re.match(r"https?://", value), value
    hrefs = [dict(attrs)["href"] for tag, attrs in parser.tags if tag == "a"]
    assert hrefs == ['https://ok.example/"onmouseover="alert(7)']   # the quote stayed inside the value
    assert "&lt;script&gt;" in out and "javascript:alert(3)" in out   # shown as text


def test_html_is_self_contained_and_dark_mode_friendly() -> None:
    out = render(digest(sample_matches()), "html")
    assert out.startswith("<!DOCTYPE html>")
    assert "prefers-color-scheme: dark" in out and "<svg" in out and "<rect" in out
    assert "default-src 'none'" in out
    assert "<script" not in out.lower() and "<link" not in out.lower() and "@import" not in out
    assert "<mark>Kim Jong Un</mark>" in out
    assert 'href="https://news.example/2018/05/24/trump-cancels-summit"' in out
    assert "Also carried by The Herald" in out and "No coverage in this window." in out


def test_markdown_escapes_web_text_and_links_only_http() -> None:
    out = render(hostile_digest(), "markdown")
    links = re.findall(r"\]\(<([^>]*)>\)", out)
    assert links == ['https://ok.example/"onmouseover="alert(7)']
    outside_links = re.sub(r"\]\(<[^>]*>\)", "]", out)
    assert re.findall(r"(?<!\\)[<>\[\]`]", outside_links) == ["`", "`", "[", "]"]   # the sparkline, the link
    assert "\\<script\\>" in out and "javascript:alert\\(3\\)" in out


def test_text_strips_terminal_control_sequences() -> None:
    evil = match("https://a.example/1", title="Fine\x1b]0;pwned\x07\x1b[2J title\u202e", outlet="Out\rlet",
                 body="Body with \x1b[31m escape")
    out = render(digest([evil]), "text")
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "Fine ]0;pwned [2J title" in out


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="pdf"):
        render(digest([]), "pdf")  # type: ignore[arg-type]


def test_long_timelines_fit_a_terminal_line_and_the_chart_has_dates() -> None:
    days = [match(f"https://news.example/{i}", minutes=i * 24 * 60, body=f"{OTHER} {i} " * 3) for i in range(0, 141, 7)]
    d = digest(days, since=None, until=None)
    assert d.stories[0].timeline.unit == "day" and len(d.stories[0].timeline.buckets) == 141
    line = next(x for x in render(d, "text").splitlines() if x.startswith("Per "))
    assert line.startswith("Per 3 days, 2018-05-24 00:00 UTC to 2018-10-11 00:00 UTC: ")
    assert len(line.split(": ", 1)[1].split("  ")[0]) == 47          # 141 days in 47 characters
    assert "(peak 1 match per 3 days, from 2018-05-24 00:00 UTC)" in line
    assert "Per 3 days from 2018-05-24 00:00 UTC: `" in render(d, "markdown")
    html = render(d, "html")
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', html)
    assert ticks[0] == "24 May" and ticks[-1] == "11 Oct" and 3 <= len(ticks) <= 6


# --- near misses (report --near-misses) ----------------------------------------------------------

def near_miss(url: str, *, logit: float = -0.5, minutes: int = 0, title: str = "Summit talk stalls",
              evidence: tuple[str, ...] = ("reference similarity 0.12",), outlet: str | None = "Example News",
              version: str = "0123456789abcdef") -> StoredNearMiss:
    when = T0 + timedelta(minutes=minutes)
    return StoredNearMiss(story_id=SUMMIT.id, score=round(1 / (1 + math.exp(-logit)), 4), logit=logit,
                          evidence=evidence, model_version=version, decided_at=when, article_id=0, url=url,
                          canonical_url=url, title=title, outlet=outlet, published=when, fetched_at=when)


def test_near_misses_are_filed_in_the_window_closest_first_and_only_when_asked() -> None:
    near = [near_miss("https://a.example/far", logit=-1.9), near_miss("https://a.example/close", logit=-0.2),
            near_miss("https://a.example/late", logit=-0.1, minutes=60 * 24 * 365)]
    d = build_digest((SUMMIT, EMPTY), sample_matches(), since=datetime(2018, 3, 1, tzinfo=UTC),
                     until=datetime(2018, 8, 1, tzinfo=UTC), generated_at=GENERATED, near_misses=near)
    assert [n.url for n in d.stories[0].near_misses or ()] == ["https://a.example/close", "https://a.example/far"]
    assert d.stories[1].near_misses == ()
    assert digest(sample_matches()).stories[0].near_misses is None
    document = json.loads(render(d, "json"))
    assert [n["url"] for n in document["stories"][0]["near_misses"]] == ["https://a.example/close",
                                                                          "https://a.example/far"]
    assert document["stories"][1]["near_misses"] == []
    assert "near_misses" not in json.loads(render(digest(sample_matches()), "json"))["stories"][0]
    assert "Why not: no near misses in this window." in render(d, "text")


def test_near_misses_from_the_web_are_escaped_in_every_format() -> None:
    near = [near_miss(url, logit=-0.1 * i, title=HOSTILE_TITLE, outlet="<iframe src=//evil.example>",
                      evidence=("title: <svg onload=alert(8)>, summit", "\x1b[2J<b onclick=alert(1)>x</b>"),
                      version="<v>")
            for i, url in enumerate(HOSTILE_URLS)]
    story = StoryInfo(SUMMIT.id, "Summit")
    d = build_digest((story,), [], since=None, until=None, generated_at=GENERATED, near_misses=near)
    html = render(d, "html")
    parser = _Elements()
    parser.feed(html)
    assert {tag for tag, _ in parser.tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3",
                                               "p", "code", "section", "ol", "li", "a", "span", "div"}
    for tag, attrs in parser.tags:
        for name, _value in attrs:
            assert not name.startswith("on") and name not in {"src", "srcdoc", "formaction"}, (tag, name)
    assert [dict(attrs)["href"] for tag, attrs in parser.tags if tag == "a"] == ['https://ok.example/"onmouseover="alert(7)']
    assert "&lt;svg onload=alert(8)&gt;" in html and "javascript:alert(3)" in html
    markdown = render(d, "markdown")
    assert re.findall(r"\]\(<([^>]*)>\)", markdown) == ['https://ok.example/"onmouseover="alert(7)']
    assert "\\<svg onload=alert\\(8\\)\\>" in markdown and "\\<v\\>" in markdown
    text = render(d, "text")
    assert "\x1b" not in text and "Why not: 5 near misses" in text


def test_matches_that_all_score_one_are_ranked_by_their_logit() -> None:
    from dataclasses import replace

    same = [replace(match(f"https://news.example/{n}", minutes=n, title=f"Story {n}", body=f"{OTHER} {n}",
                          score=1.0), logit=logit)
            for n, logit in enumerate((7.5, 12.0, 9.25))]
    [summit, _] = digest(same).stories
    # a score that rounds to 1.00 still says which coverage is the more certain
    assert [c.lead.title for c in summit.coverage] == ["Story 1", "Story 2", "Story 0"]
