"""Story evolution (names learned from confident matches, with its drift guards) and the
background of stored articles, on a real database."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor._types import Article
from monitor.db.store import ArticleWrite, Store
from monitor.db.story_models import current_stories, judge, rebuild, versions
from monitor.db.story_state import learned_names, record_learning
from monitor.matching import Matcher, load_stories
from monitor.matching.evolve import learnable_names, with_learned
from monitor.matching.profile import background

STORY = "trump-kim-summit-2018"
ARTICLES = Path(__file__).parent / "data" / "articles"

# Coverage of the summit day that names what the story was written without: the hotel and
# the leader's sister. Three outlets, all confident matches.
_TEACHING = [
    ("Daily Planet", "Trump and Kim Jong Un meet at Singapore summit",
     "Donald Trump and Kim Jong Un met for a summit at the Capella Hotel in Singapore on Tuesday, the first "
     "meeting of a US president and a North Korean leader.\n\nKim Yo Jong, the leader's sister, handed Kim Jong Un "
     "a pen as the two men signed a joint statement at the summit.\n\nTrump said the talks with North Korea at the "
     "Capella Hotel had gone better than anyone expected."),
    ("Gazette", "Handshake in Singapore: Trump and Kim hold historic summit",
     "The summit between Donald Trump and North Korea's Kim Jong Un opened with a long handshake at the Capella "
     "Hotel on Sentosa.\n\nKim Yo Jong stood a few steps behind her brother as the leaders met, and later joined "
     "the talks with the US delegation.\n\nNorth Korea's state media called the meeting with Trump a success."),
    ("Gazette", "What Trump and Kim signed at the Singapore summit",
     "Donald Trump and Kim Jong Un signed a joint statement at the end of their summit at the Capella Hotel, "
     "pledging to work toward denuclearization of the Korean Peninsula.\n\nKim Yo Jong and Mike Pompeo prepared "
     "the text during the meeting, officials said.\n\nTrump called the talks with North Korea honest and direct."),
]
# The same day told without the story's usual wording: the sides and the meeting are barely named.
_PARAPHRASED = (
    "Sister of North Korean leader steals the show on Sentosa",
    "Kim Yo Jong, who rarely speaks in public, was never far from her brother's side during the day at the "
    "Capella Hotel.\n\nDiplomats said she had handled much of the planning with American officials in recent "
    "weeks, flying between Pyongyang and the island resort.\n\nPhotographers followed her around the grounds of "
    "the Capella Hotel, where lunch was served to both delegations after the meeting with Donald Trump.\n\n"
    "Analysts in Seoul said her prominence suggested a larger role in foreign policy, and perhaps in any future "
    "negotiations.")


def _article(title: str, body: str, when: datetime | None, outlet: str = "Daily Planet", n: int = 0) -> Article:
    url = f"https://{outlet.lower().replace(' ', '')}.test/{n}"
    return Article(url=url, final_url=url, feed_url="https://feed.test/rss", title=title, body=body,
                   fetched_at=when or datetime(2018, 6, 13, tzinfo=UTC), published=when, outlet=outlet)


def _june(day: int) -> datetime:
    return datetime(2018, 6, day, 9, tzinfo=UTC)


@pytest.fixture
def story():  # type: ignore[no-untyped-def]
    return load_stories([{"id": STORY}])[0]


def _learn(store: Store, story, articles: list[Article]) -> None:  # type: ignore[no-untyped-def]
    matcher = Matcher(current_stories(store, [story]))
    for article in articles:
        results = matcher.match(article)
        [(article_id, _, _)] = store.store_articles([ArticleWrite(article, results, [])], article.fetched_at)
        record_learning(store, article_id, article, results, [story])


def test_confident_matches_teach_names_that_raise_recall(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    paraphrased = _article(*_PARAPHRASED, _june(13), outlet="Herald", n=99)
    before = Matcher([story]).match(paraphrased)[0]
    assert not before.matched
    with Store.open(db_url, create=True) as store:
        _learn(store, story, [_article(t, b, _june(12), o, i) for i, (o, t, b) in enumerate(_TEACHING)])
        assert learned_names(store, [STORY]) == {STORY: ("Capella Hotel", "Kim Yo Jong")}
        evolved, changed = rebuild(store, story)
        assert changed and evolved.learned == ("Capella Hotel", "Kim Yo Jong")
    after = Matcher([evolved]).match(paraphrased)[0]
    assert after.matched and after.score > before.score
    assert "names learned from earlier coverage: Capella Hotel, Kim Yo Jong" in after.evidence
    assert after.rule_versions["learned"] == "1"
    # The learned names are worth at most LEARNED_WEIGHT in the logit.
    assert after.details["logit"] - before.details["logit"] == pytest.approx(1.0, abs=1e-3)


def test_hanoi_2019_still_does_not_match_after_learning(story) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((ARTICLES / "neg-hanoi-2019.json").read_text(encoding="utf-8"))
    hanoi = _article(data["title"], data["body"] + "\n\nKim Yo Jong was again at the Capella Hotel, aides said.",
                     datetime.fromisoformat(data["published"]))
    evolved = with_learned([story], {STORY: ["Kim Yo Jong", "Capella Hotel"]})
    matcher = Matcher(evolved)
    assert matcher.match(hanoi) == []     # outside the story's window: not even evaluated
    result = matcher.match(hanoi, every_candidate=True)[0]
    assert not result.matched and result.score == 0.0
    # Nor does it teach anything, however confident it looks: it is outside the window.
    assert learnable_names(evolved[0], hanoi, replace(result, matched=True, score=1.0)) == ()


def test_learning_guards(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    teaching = [_article(t, b, _june(12), o, i) for i, (o, t, b) in enumerate(_TEACHING)]
    with Store.open(db_url, create=True) as store:
        # One outlet is not enough, however often it writes.
        _learn(store, story, [replace(a, outlet="Gazette") for a in teaching])
        assert learned_names(store, [STORY]) == {}
        # Undated articles teach nothing: the window cannot be checked.
        _learn(store, story, [replace(a, url=a.url + "u", published=None, outlet=f"o{i}")
                              for i, a in enumerate(teaching)])
        assert learned_names(store, [STORY]) == {}
    matcher = Matcher(with_learned([story], {STORY: ["Kim Yo Jong", "Capella Hotel"]}))
    paraphrased = _article(*_PARAPHRASED, _june(13), outlet="Herald")
    result = matcher.match(paraphrased)[0]
    assert result.matched
    # An article that matches only thanks to learned names teaches nothing.
    assert learnable_names(matcher.stories[0], paraphrased, result) == ()


def test_names_the_story_knows_or_common_words_are_not_learned(story) -> None:  # type: ignore[no-untyped-def]
    body = ("Donald Trump and Kim Jong Un held their summit in Singapore, said the Associated Press. President "
            "Trump met Chairman Kim Jong Un at the Capella Hotel.\n\nThe State Department said the talks with "
            "North Korea were a success.")
    article = _article("Trump and Kim Jong Un meet at Singapore summit", body, _june(12))
    result = Matcher([story]).match(article)[0]
    assert result.score >= 0.9
    assert learnable_names(story, article, result) == ("Capella Hotel",)


def test_matcher_uses_the_background_it_is_given(story) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((ARTICLES / "on-summit-day.json").read_text(encoding="utf-8"))
    article = _article(data["title"], data["body"], datetime.fromisoformat(data["published"]))
    plain = Matcher([story]).match(article)[0].details["reference"]["similarity"]
    # A background in which every article is about North Korea makes those words worthless.
    korea = background().blend(type(background())(documents=1000, df={"korea": 1000, "north": 1000, "kim": 1000}))
    damped = Matcher([story], background=korea).match(article)[0].details["reference"]["similarity"]
    assert damped < plain


def test_a_name_other_articles_use_too_is_the_setting_and_is_not_learned(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    hotel_news = [_article(f"Capella Hotel news {i}", "The Capella Hotel on Sentosa reopened its spa and "
                           f"restaurant after a renovation, the hotel group said on day {i}.", _june(20), "Travel Post", i)
                  for i in range(3)]
    with Store.open(db_url, create=True) as store:
        _learn(store, story, [_article(t, b, _june(12), o, i) for i, (o, t, b) in enumerate(_TEACHING)])
        for article in hotel_news:     # stored, and not the story's: the hotel is only where it happened
            results = Matcher(current_stories(store, [story])).match(article)
            assert not any(r.matched for r in results)
            store.store_articles([ArticleWrite(article, results, [])], article.fetched_at)
        assert learned_names(store, [STORY]) == {STORY: ("Capella Hotel", "Kim Yo Jong")}
        evolved, changed = rebuild(store, story)
    # Three of the six articles naming the hotel are the story's: it marks the place, not the story.
    assert changed and evolved.learned == ("Kim Yo Jong",)


def test_versions_of_more_stories_than_sqlite_takes_parameters_are_read(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    """A platform's 70,000 stories: their versions are read in bounded batches, not one IN list of more
    parameters than PostgreSQL (65,535) takes."""
    many = [replace(story, id=f"{story.id}-{i}") for i in range(70_000)]
    with Store.open(db_url, create=True) as store:
        recorded = current_stories(store, many[:3])
        read_back = current_stories(store, many, record=False)
    assert [s.id for s in read_back] == [s.id for s in many]
    assert [s.version for s in read_back[:3]] == [s.version for s in recorded] and recorded[0].version


# -- the daemon's matcher on every tick ---------------------------------------------------------

_JUDGE_ELSEWHERE = """
import sys
from monitor.db.store import Store
from monitor.db.story_models import judge, rebuild
from monitor.matching import load_stories

[story] = load_stories([{"id": sys.argv[2]}])
with Store.open(sys.argv[1], create=False) as store:
    judge(store, sys.argv[2], sys.argv[3], "on", author="analyst")
    print(rebuild(store, story)[0].version)
"""


def test_a_tick_reuses_the_compiled_stories_until_another_process_makes_a_new_version(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    """A daemon asks for its matcher every tick: compiling 10,000 stories takes tens of seconds, so
    the matcher is compiled again only when a version it uses changed, and a version made by
    another process (here `judge` and a rebuild) is what the next tick matches with."""
    import subprocess
    import sys

    from monitor.config import settings_from_dict
    from monitor.runtime import Runtime

    other = replace(story, id=f"{story.id}-other")
    with Store.open(db_url, create=True) as store:
        runtime = Runtime(settings_from_dict({"database": {"url": db_url}}), store, [story, other])
        first = runtime.matcher()
        compiled = first._built()
        # Nothing changed: the next ticks match with the very same compiled stories.
        assert runtime.matcher()._built() is compiled and runtime.matcher()._built() is compiled
        # A version of a story this daemon does not match with changes nothing it matches with.
        current_stories(store, [replace(story, id="not-this-daemons")])
        assert runtime.matcher()._built() is compiled

        url = "https://judged.test/article"
        done = subprocess.run([sys.executable, "-c", _JUDGE_ELSEWHERE, db_url, story.id, url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        new_version = done.stdout.strip()
        assert new_version and new_version != compiled.stories[0].version

        rebuilt = runtime.matcher()._built()
        assert rebuilt is not compiled
        by_id = {s.id: s for s in rebuilt.stories}
        assert by_id[story.id].version == new_version and by_id[story.id].judged == {url: "on"}
        assert by_id[other.id].version == {s.id: s for s in compiled.stories}[other.id].version
        assert runtime.matcher()._built() is rebuilt
        # The matcher handed out before keeps deciding with the versions of its own tick.
        assert first.stories[0].version == compiled.stories[0].version


def test_the_current_stories_are_read_one_version_a_story(db_url: str, story) -> None:  # type: ignore[no-untyped-def]
    """Many versions of a story (a rebuild a day) cost a tick nothing: the newest of the story's own
    definition decides, and a new definition carries over the newest version of any definition."""
    edited = replace(story, threshold=story.threshold + 0.01)
    with Store.open(db_url, create=True) as store:
        for day in range(1, 6):
            judge(store, story.id, f"https://judged.test/{day}", "on", author="analyst")
            rebuild(store, story, at=datetime(2024, 1, day, tzinfo=UTC))
        newest = versions(store, story.id)[0]
        [current] = current_stories(store, [story])
        assert current.version == newest.version and len(current.judged) == 5
        # Another definition (the story edited) recorded later: this one still decides with its own.
        [after_edit] = current_stories(store, [edited])
        assert after_edit.version != newest.version and after_edit.judged == current.judged
        assert current_stories(store, [story])[0].version == newest.version
        assert current_stories(store, [edited])[0].version == after_edit.version
