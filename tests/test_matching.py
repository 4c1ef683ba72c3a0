"""Text analysis, profiles, the loader (stories, plugins, errors), the prefilter and evaluation."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor._types import Article
from monitor.exceptions import ConfigError, PluginError
from monitor.matching import Matcher, derive_profile, evaluate_corpus, list_rules, load_stories, similarity
from monitor.matching.text import fold, split_paragraphs, split_sentences, tokenize

SUMMIT = "trump-kim-summit-2018"

INLINE = {
    "id": "harbour-strike",
    "title": "Harbour strike",
    "start": "2021-03-01",
    "end": "2021-03-31",
    "names": [{"name": "Port Authority", "aliases": ["harbour board"]}],
    "facets": {"who": ["Port Authority", "dockers"], "what": ["strike*", "walkout"]},
    "rules": [{"name": "window", "required": True, "weight": 0.0},
              {"name": "coverage", "weight": 6.0, "params": {"full_at": 0.5}}],
    "bias": -3.0,
}


# -- text ---------------------------------------------------------------------------------

def test_fold_strips_case_and_accents() -> None:
    assert fold("Corée du NORD") == "coree du nord"
    assert fold("Straße") == "strasse"
    assert fold("김정은") == "김정은"


def test_tokenize_words_and_cjk_bigrams() -> None:
    assert tokenize("Kim Jong-un's summit!") == ["kim", "jong", "un", "s", "summit"]
    assert tokenize("김정은은") == ["김정", "정은", "은은"]
    assert tokenize("金正恩") == ["金正", "正恩"]


def test_paragraphs_and_sentences() -> None:
    assert split_paragraphs("One.\n\n  Two\nlines.\n\n\n") == ["One.", "Two lines."]
    assert split_paragraphs("a\nb") == ["a", "b"]
    assert split_sentences("Mr. Kim met Mr. Trump. They talked in the U.S. Embassy. Done!") == [
        "Mr. Kim met Mr. Trump.", "They talked in the U.S. Embassy.", "Done!"]


# -- profiles -----------------------------------------------------------------------------

def test_derive_profile_finds_terms_names_and_dates() -> None:
    text = ("The harbour board said dockers would strike on March 3, 2021.\n\n"
            "Dockers at the Port of Eastwick voted for the strike. The harbour board called it reckless.\n\n"
            "Negotiations with Jane Doe, the union leader, continue in Eastwick.")
    profile = derive_profile(text, title="Dockers strike")
    assert max(profile.terms.values()) == 1.0
    assert {"dockers", "strike", "harbour"} <= set(profile.terms)
    assert "Jane Doe" in profile.names and "Eastwick" in profile.places
    assert profile.dates == (datetime(2021, 3, 3).date(),)
    assert similarity({"dockers": 1.0}, profile.terms) > similarity({"football": 1.0}, profile.terms) == 0.0


# -- loader -------------------------------------------------------------------------------

def test_plugin_story_selected_by_id_with_overrides() -> None:
    [story] = load_stories([{"id": SUMMIT, "threshold": 0.6, "enabled": False}])
    assert story.title == "Trump–Kim summit, 2018" and story.threshold == 0.6 and not story.enabled
    assert story.reference is not None and "theatlantic.com" in (story.reference.url or "")
    assert story.start == datetime(2018, 3, 8, tzinfo=UTC)
    assert story.origin.endswith("trump-kim-summit-2018.toml")
    assert Matcher([story]).stories == []   # disabled stories are not matched


def test_unknown_story_key_is_rejected_naming_story_and_key() -> None:
    with pytest.raises(ConfigError, match=r"story 'harbour-strike': key 'colour'"):
        load_stories([{**INLINE, "colour": "red"}])
    with pytest.raises(ConfigError, match=r"story 'trump-kim-summit-2018': key 'bias'"):
        load_stories([{"id": SUMMIT, "bias": 1.0}])
    with pytest.raises(ConfigError, match=r"story 'harbour-strike': key 'threshold'"):
        load_stories([{**INLINE, "threshold": "high"}])
    with pytest.raises(ConfigError, match=r"rules\[0\]: key 'name' names no known rule: 'nope'"):
        load_stories([{**INLINE, "rules": [{"name": "nope"}]}])
    with pytest.raises(ConfigError, match=r"rule 'coverage'.*full_at"):
        load_stories([{**INLINE, "rules": [{"name": "coverage", "params": {"full_at": 7}}]}])
    with pytest.raises(ConfigError, match="configured twice"):
        load_stories([INLINE, INLINE])


def test_inline_story_matches() -> None:
    [story] = load_stories([INLINE])
    matcher = Matcher([story])
    when = datetime(2021, 3, 2, tzinfo=UTC)
    article = Article(url="https://t.test/s", final_url="https://t.test/s", feed_url="", fetched_at=when,
                      published=when, title="Walkout", body="Dockers began a strike against the harbour board.")
    [result] = matcher.match(article)
    assert result.matched and "1 of 1 paragraphs (100%) are about the story" in result.evidence


CUSTOM_RULE = '''
from monitor.matching import RuleResult


class ShoutRule:
    """Scores 1 when the title is in capitals."""
    name = "shout"
    version = "2.0"

    def __init__(self, story, params):
        self.min_length = params.get("min_length", 3)

    def evaluate(self, doc):
        loud = len(doc.title) >= self.min_length and doc.title.isupper()
        return RuleResult(1.0 if loud else 0.0, ("the title shouts",) if loud else ())


RULES = [ShoutRule]
STORIES = [{"id": "shouting", "title": "Shouting", "rules": [{"name": "shout", "weight": 4.0}], "bias": -2.0}]
'''


def test_plugin_folder_with_custom_rule_and_story_is_discovered(tmp_path: Path) -> None:
    (tmp_path / "shout.py").write_text(CUSTOM_RULE, encoding="utf-8")
    (tmp_path / "quiet.toml").write_text(
        'id = "quiet"\ntitle = "Quiet"\n[[rules]]\nname = "shout"\nweight = -4.0\n', encoding="utf-8")
    infos = {r.name: r for r in list_rules(plugin_dirs=[tmp_path])}
    assert infos["coverage"].origin == "built-in"
    assert (infos["shout"].version, infos["shout"].origin) == ("2.0", f"{tmp_path.name}/shout.py")
    stories = load_stories([{"id": "shouting"}, {"id": "quiet"}], plugin_dirs=[tmp_path])
    when = datetime(2021, 1, 1, tzinfo=UTC)
    article = Article(url="u", final_url="u", feed_url="", fetched_at=when, title="BREAKING NEWS", body="Text.")
    verdicts = {r.story_id: r for r in Matcher(stories).match(article)}
    assert verdicts["shouting"].matched and verdicts["shouting"].evidence == ("the title shouts",)
    assert not verdicts["quiet"].matched
    assert verdicts["shouting"].rule_versions == {"shout": "2.0"}


@pytest.mark.parametrize("filename, content, message", [
    ("broken.py", "raise RuntimeError('cannot start')\n", "failed to import: cannot start"),
    ("nameless.py", "class R:\n    version = '1'\n    def evaluate(self, doc): pass\nRULES = [R]\n",
     "no string `name`"),
    ("clash.py", "class R:\n    name = 'coverage'\n    version = '1'\n    def evaluate(self, doc): pass\nRULES = [R]\n",
     "rule name 'coverage' is already taken"),
    ("bad.toml", "id = \n", "cannot read story"),
    ("incomplete.toml", 'id = "x"\ntitle = "X"\n', "key 'rules' must list at least one rule"),
    ("clash.toml", f'id = "{SUMMIT}"\ntitle = "X"\n[[rules]]\nname = "title"\n', "already defined"),
])
def test_plugin_errors_name_the_plugin(tmp_path: Path, filename: str, content: str, message: str) -> None:
    (tmp_path / filename).write_text(content, encoding="utf-8")
    with pytest.raises(PluginError, match=message) as caught:
        load_stories([], plugin_dirs=[tmp_path])
    assert caught.value.plugin == f"{tmp_path.name}/{filename}"


def test_missing_plugin_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="does not exist"):
        list_rules(plugin_dirs=[tmp_path / "absent"])


# -- prefilter ----------------------------------------------------------------------------

def test_prefilter_evaluates_only_stories_whose_facets_all_occur() -> None:
    tables = [{**INLINE, "id": f"s{i}", "facets": {"who": [f"name{i}"], "what": ["strike*"]}} for i in range(50)]
    matcher = Matcher(load_stories(tables))
    when = datetime(2021, 3, 2, tzinfo=UTC)
    article = Article(url="u", final_url="u", feed_url="", fetched_at=when, published=when,
                      title="Name7 and name12", body="Name7 strikes. Name12 walks out. Name30 watches.")
    # Facets are checked on the whole document: "strikes" serves s7, s12 and s30 alike.
    assert [r.story_id for r in matcher.match(article)] == ["s7", "s12", "s30"]
    quiet = Article(url="u", final_url="u", feed_url="", fetched_at=when, published=when,
                    title="Name7", body="Name7 walks out.")
    assert matcher.match(quiet) == []


# -- evaluation ---------------------------------------------------------------------------

def test_evaluate_corpus_counts_and_formats(tmp_path: Path) -> None:
    rows = [
        ("a", "on", "on:x", "Dockers strike at the harbour", "Dockers strike against the harbour board."),
        ("b", "on", "on:x", "Quiet day", "Nothing happened at all."),
        ("c", "off", "off-hard:y", "Dockers strike elsewhere", "Dockers strike, says the harbour board."),
        ("d", "off", "off-easy:z", "Football", "A match was played."),
        ("e", "brief", "brief:w", "Dockers strike briefly", "Dockers strike and the harbour board waits."),
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": i, "label": label, "category": cat, "title": title, "body": body,
                                            "summary": "", "published": "2021-03-05T10:00:00+00:00",
                                            "lang": "en"}) for i, label, cat, title, body in rows),
                      encoding="utf-8")
    report = evaluate_corpus(corpus, load_stories([INLINE]), "harbour-strike")
    assert (report.on, report.off, report.brief) == (2, 2, 1)
    assert (report.true_positives, report.false_positives) == (1, 1)
    assert report.precision == 0.5 and report.recall == 0.5 and report.f1 == 0.5
    assert report.c_norm == pytest.approx(0.5 + 4.9 * 0.5)
    assert report.misses == {"on:x": ("b",)} and report.false_alarms == {"off-hard:y": ("c",)}
    text = report.format()
    assert "C_norm" in text and "threshold sweep" in text and "off-hard:y: 1 (c)" in text


def test_story_derived_from_an_article_loads_and_matches_it(tmp_path: Path) -> None:
    import tomllib

    from monitor.matching.authoring import story_table, story_toml

    text = ("Dockers at the Port of Eastwick walked out on Monday, the first strike at the harbour in a decade.\n\n"
            "The Eastwick Harbour Board said the strike would delay ships. Dockers want higher pay.\n\n"
            "Jane Doe, who leads the dockers' union, said the strike would go on until the board negotiates.")
    profile = derive_profile(text, title="Eastwick dockers strike")
    table = story_table(profile, story_id="eastwick-strike", title="Eastwick strike",
                        reference_url="https://news.test/strike", published=datetime(2021, 3, 1).date())
    (tmp_path / "eastwick.toml").write_text(story_toml(table), encoding="utf-8")
    assert tomllib.loads((tmp_path / "eastwick.toml").read_text(encoding="utf-8"))["id"] == "eastwick-strike"
    [story] = load_stories([{"id": "eastwick-strike"}], plugin_dirs=[tmp_path])
    when = datetime(2021, 3, 2, tzinfo=UTC)
    article = Article(url="u", final_url="u", feed_url="", fetched_at=when, published=when,
                      title="Eastwick dockers strike", body=text)
    [result] = Matcher([story]).match(article)
    assert result.matched
