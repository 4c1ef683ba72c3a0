"""The faster folding, tokenising and prefiltering of matching give exactly what the plain
versions give: the plain versions are written out here and compared on hard input. Facets,
profiles and queries share one tokeniser: `tokenize` gives the words `analyze` indexes."""
from __future__ import annotations

import json
import random
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor._types import Article
from monitor.matching import Matcher, load_stories
from monitor.matching.authoring import story_table
from monitor.matching.base import Document, Story
from monitor.matching.document import FieldIndex
from monitor.matching.index import prefilter_words, shared_terms
from monitor.matching.matcher import _required_names, _required_query_words
from monitor.matching.names import derive_names
from monitor.matching.profile import derive_profile
from monitor.matching.rules import FacetIndex
from monitor.matching.text import Alias, analyze, fold, is_cjk, parse_alias, split_paragraphs, tokenize, word_spans

# The reference is written out here, not imported: the implementation's own patterns would make
# the comparison check them against themselves. It folds cluster by cluster (a character and the
# marks after it), with no fast path for ASCII and no cache.
_CJK = [(0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
        (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0x20000, 0x3134F)]
_DIACRITIC_BLOCKS = [(0x300, 0x36F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),
                     (0xFE00, 0xFE0F), (0xE0100, 0xE01EF)]
_INVISIBLE = "\u00ad\u200c\u200d\u2060\ufeff"
_FOLD_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})


def _in(char: str, ranges: list[tuple[int, int]]) -> bool:
    return any(low <= ord(char) <= high for low, high in ranges)


def _clusters(text: str) -> list[str]:
    clusters: list[str] = []
    for char in text:
        joins = clusters and (unicodedata.category(char).startswith("M") or (
            "\u1100" <= clusters[-1][0] <= "\u115f" and "\u1160" <= char <= "\u11ff"))
        if joins:
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def _fold_cluster(cluster: str) -> str:
    for _ in range(2):
        decomposed = unicodedata.normalize("NFKD", cluster)
        cluster = "".join(c for c in decomposed if not _in(c, _DIACRITIC_BLOCKS) and c not in _INVISIBLE).casefold()
    return unicodedata.normalize("NFC", cluster).translate(_FOLD_EXTRA)


def plain_fold(text: str) -> str:
    return "".join(_fold_cluster(c) for c in _clusters(text))


def plain_tokenize(text: str) -> list[str]:
    """Words of letters, digits and marks; CJK runs as bigrams (a lone character as itself)."""
    runs: list[tuple[str, str]] = []     # (kind, text)
    for char in plain_fold(text):
        kind = "cjk" if _in(char, _CJK) else "word" if unicodedata.category(char)[0] in "LNM" else ""
        if kind and runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + char)
        else:
            runs.append((kind, char))
    out: list[str] = []
    for kind, run in runs:
        if kind == "word":
            out.append(run)
        elif kind == "cjk":
            out.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return out


def assert_one_tokeniser(text: str) -> None:
    """What facets and profiles read (`tokenize`) is what the query language indexes (`analyze`),
    but for the CJK unigrams the query index holds besides the bigrams."""
    fast, plain = tokenize(text), plain_tokenize(text)
    assert fast == plain, ascii(text)
    analyzed = [t.text for t in analyze(text)]
    assert [t for t in fast if not is_cjk(t[0])] == [t for t in analyzed if not is_cjk(t[0])], ascii(text)
    assert set(fast) <= set(analyzed), ascii(text)


def _interesting_characters() -> list[str]:
    """Every character that case folding, compatibility decomposition or accent stripping changes."""
    found = []
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        c = chr(code)
        if (c.casefold() != c or unicodedata.category(c).startswith("M") or unicodedata.decomposition(c)
                or c in "ßæœøđłı" + _INVISIBLE):
            found.append(c)
    return found


def test_fold_and_tokenize_equal_the_plain_versions_beside_ascii() -> None:
    # Folding runs of non-ASCII text on their own is right only if normalisation never reorders
    # or composes across an ASCII character: every such character is tried on both sides of one.
    for c in _interesting_characters():
        for text in (c, f"a{c}", f"{c}a", f"A{c}b", f"{c}{c}", f"x {c}\u0301y", f"{c}\u0338=", f"가{c}", f"{c}金"):
            assert fold(text) == plain_fold(text), ascii(text)
            assert_one_tokeniser(text)


def test_fold_and_tokenize_equal_the_plain_versions_on_mixed_scripts() -> None:
    rng = random.Random(2018)
    pool = [chr(c) for c in [*range(0x20, 0x250), *range(0x300, 0x370), *range(0x900, 0x980), *range(0x1100, 0x1200),
                             *range(0xAC00, 0xAC40), *range(0x3040, 0x3100), 0x130, 0x1E9E, 0xFB01,
                             0x2460, 0xFF21, 0x3000, 0x4E00, 0x1F130, 0x1F600, 0x2019, 0x201C, 0x2014,
                             0xAD, 0x200D, 0x3099, 0x20000]]
    for _ in range(5000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 80)))
        assert fold(text) == plain_fold(text), ascii(text)
        assert_one_tokeniser(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fold_and_tokenize_equal_the_plain_versions_on_any_text(text: str) -> None:
    assert fold(text) == plain_fold(text)
    assert_one_tokeniser(text)
    assert fold(text) == fold(text)    # the cache of folded runs gives the same answer twice


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("Kim Jong-un's “summit” — ½ ™ é e\u0301 İ ß 金正恩 'a1_.\n")), max_size=60)
       | st.text(max_size=60))
def test_a_field_index_from_word_spans_is_the_one_analyze_gives(text: str) -> None:
    assert FieldIndex.of_text(text) == FieldIndex.build(analyze(text)), ascii(text)


def test_word_spans_serve_english_news_and_refuse_what_folds_into_words() -> None:
    assert word_spans("Trump’s “summit” — in Singapore…") == [
        ("trump", 0, 5), ("s", 6, 7), ("summit", 9, 15), ("in", 19, 21), ("singapore", 22, 31)]
    for text in ("Corée du Nord", "5™ brands", "½ a loaf", "金正恩"):
        assert word_spans(text) is None


def _has_alias(alias: Alias, vocabulary: frozenset[str]) -> bool:
    """The prefilter's test of one alias: its first word, or a word its one-word prefix starts."""
    if alias.prefix and len(alias.tokens) == 1:
        return any(token.startswith(alias.first) for token in vocabulary)
    return alias.first in vocabulary


def plain_is_candidate(story: Story, doc: Document) -> bool:
    """What the prefilter lets through, from the story alone, story by story: a word of each facet,
    of each group of words its required query needs (a `title:` word in the title), of its
    required names, and `anchors_needed` anchors."""
    rules = [(spec.factory(story, spec.params), spec.weight, spec.required) for spec in story.rules
             if spec.factory is not None]
    needs = list(FacetIndex(story).all_aliases().values()) if story.facets else []
    needs += _required_query_words(rules)
    names = _required_names(rules)
    if names:
        needs.append(names)
    vocabulary = prefilter_words(doc.vocabulary, doc.title_tokens)
    anchors = set(story.anchors)
    if not needs and not anchors:
        return True
    return (all(any(_has_alias(a, vocabulary) for a in aliases) for aliases in needs)
            and sum(a in vocabulary for a in anchors) >= (story.anchors_needed if anchors else 0))


def plain_candidates(stories: list[Story], doc: Document) -> list[int]:
    enabled = [s for s in stories if s.enabled]
    return [i for i, story in enumerate(enabled) if plain_is_candidate(story, doc)]


def test_prefilter_and_prefix_aliases_find_what_the_plain_scan_finds() -> None:
    rng = random.Random(7)
    words = ["talks", "talkative", "summit", "summitry", "gipfel", "gipfeltreffen", "kim", "korea",
             "koreanische", "nordkorea", "ny", "n", "trump", "washington", "pyongyang", "diplomacy"]
    tables = []
    for i in range(60):
        facets = {label: [rng.choice(words) + rng.choice(["", "*"]) for _ in range(3)] for label in ("a", "b")}
        facets["c"] = [rng.choice(["n*", "ny*", "ko*", "summ*"])]     # prefixes shorter than the head test
        tables.append({"id": f"s{i}", "title": f"Story {i}", "facets": facets,
                        "rules": [{"name": "title", "weight": 2.0}, {"name": "coverage", "weight": 3.0}]})
    stories = load_stories(tables)
    matcher = Matcher(stories)
    when = datetime(2018, 6, 12, tzinfo=UTC)
    for n in range(200):
        body = " ".join(rng.choice(words + ["the", "and", "Nordkoreas", "NY"]) for _ in range(rng.randint(0, 60)))
        doc = Document.from_article(Article(url=f"u{n}", final_url=f"u{n}", feed_url="f", title=body[:30],
                                            body=body, fetched_at=when))
        assert matcher.candidates(doc) == plain_candidates(stories, doc)
        for prefix in ("n", "ny", "ko", "kor", "summ", "gipfel", "zzz"):
            alias = parse_alias(prefix + "*")
            expected = tuple(sorted({p for p, tokens in enumerate(doc.parts()) for t in tokens if t.startswith(prefix)}))
            assert doc.parts_with(alias) == expected


def _corpus_articles() -> list[Article]:
    from monitor.demo.site import load_articles

    articles = []
    for n, row in enumerate(load_articles()):
        when = datetime.fromisoformat(row["published"])
        articles.append(Article(url=f"u{n}", final_url=f"u{n}", feed_url="f", title=row["title"], body=row["body"],
                                summary=row["summary"], fetched_at=when, published=when, lang=row["lang"]))
    extra = ["Protest in Łódź over the Pjöngjang talks", "김정은 위원장과 트럼프 대통령이 싱가포르에서 만났다",
             "Weather: rain and wind across the north"]
    when = datetime(2018, 6, 12, tzinfo=UTC)
    return articles + [Article(url=f"x{n}", final_url=f"x{n}", feed_url="f", title=t, body=t, fetched_at=when)
                       for n, t in enumerate(extra)]


def test_query_only_stories_are_prefiltered_by_the_words_their_query_requires() -> None:
    queries = ["summit AND kim", "trump* NEAR/5 kim", '"joint statement" OR denucleari*', "title:singapore",
               "NOT weather", "김정은", "Pjöngjang OR Łódź", "(kim OR moon) AND -hanoi"]
    tables = [{"id": f"q{i}", "title": q, "bias": -3.0,
               "rules": [{"name": "query", "required": True, "weight": 6.0, "params": {"query": q}}]}
              for i, q in enumerate(queries)]
    stories = load_stories(tables)
    matcher = Matcher(stories)
    articles = _corpus_articles()
    skipped = 0
    for article in articles:
        doc = Document.from_article(article)
        candidates = set(matcher.candidates(doc))
        skipped += len(stories) - len(candidates)
        for index, story in enumerate(stories):
            # Every story scored alone, with no prefilter: what the prefilter may skip never matches.
            alone = Matcher([story]).explain(article, story.id)[0]
            if index not in candidates:
                assert not alone.matched, (story.title, article.title)
        assert {r.story_id for r in matcher.match(article) if r.matched} == {
            s.id for s in stories if Matcher([s]).explain(article, s.id)[0].matched}
    assert skipped > 0


def _real_texts() -> list[dict[str, str]]:
    """Real articles of the repository: the demo site's, the test articles and the story corpora."""
    from monitor.demo.site import load_articles

    data = Path(__file__).parent / "data"
    rows = [dict(r) for r in load_articles()]
    rows += [json.loads(p.read_text(encoding="utf-8")) for p in sorted((data / "articles").glob("*.json"))]
    for path in sorted((data / "stories").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if len(r.get("body", "").split()) >= 40]


def _stories_from(texts: list[dict[str, str]], rng: random.Random) -> list[dict[str, Any]]:
    """Stories of every kind made from the real texts: derived from a reference that mixes two
    articles (what `stories add` makes), query-only, and faceted; a few disabled."""
    tables: list[dict[str, Any]] = []
    for i in range(60):
        main, other = rng.sample(texts, 2)
        body = main["body"] + "\n\n" + split_paragraphs(other["body"])[0]
        published = main.get("published")
        profile = derive_profile(body, title=main["title"], max_terms=None)
        table = story_table(profile, story_id=f"derived-{i}", title=main["title"], names=derive_names(main["title"], body),
                            lang=(main.get("lang") or "en")[:2],
                            published=datetime.fromisoformat(published).date() if published and i % 2 else None)
        tables.append(table)
    for i in range(60):
        text = rng.choice(texts)
        names = [n.name for n in derive_names(text["title"], text["body"])] or [text["title"].split()[0]]
        words = [w for w in dict.fromkeys(tokenize(text["body"])) if w.isalpha() and len(w) > 4] or ["news"]
        shapes = [f'"{rng.choice(names)}" AND ({rng.choice(words)} OR {rng.choice(words)})',
                  f"{rng.choice(names).split()[-1]} NEAR/10 {rng.choice(words)}",
                  f'title:{rng.choice(words)} OR "{rng.choice(names)}"',
                  f"({rng.choice(words)} OR {rng.choice(words)}) AND {rng.choice(words)[:4]}* AND NOT {rng.choice(words)}",
                  f"NOT {rng.choice(words)}", f"{rng.choice(words)} OR NOT {rng.choice(words)}"]
        tables.append({"id": f"query-{i}", "title": text["title"], "bias": -3.0, "enabled": i % 13 != 0,
                       "rules": [{"name": "query", "required": True, "weight": 6.0,
                                  "params": {"query": rng.choice(shapes)}}]})
    for i in range(30):
        a, b = rng.sample(texts, 2)
        names = [n for t in (a, b) for n in derive_names(t["title"], t["body"])][:4]
        words = [w for t in (a, b) for w in dict.fromkeys(tokenize(t["title"])) if w.isalpha() and len(w) > 3] or ["news"]
        facets = {"who": [n.name for n in names[:2]] or [rng.choice(words)],
                  "what": [rng.choice(words) + rng.choice(["", "*"]) for _ in range(3)]}
        tables.append({"id": f"facets-{i}", "title": a["title"], "bias": -4.0,
                       "names": [{"name": n.name, "aliases": list(n.aliases)} for n in names],
                       "facets": facets, "anchors": words[:5], "anchors_needed": min(2, len(words[:5])),
                       "terms": dict(derive_profile(a["body"], title=a["title"]).terms),
                       "rules": [{"name": "title", "weight": 2.0}, {"name": "lead", "weight": 1.0},
                                 {"name": "coverage", "weight": 5.0}, {"name": "reference", "weight": 2.0}]})
    return tables


def test_indexed_matcher_decides_as_every_story_scored_alone() -> None:
    # Many stories made from real text, on real articles: the shared index lets through exactly
    # the stories the plain prefilter admits, and each verdict equals the story scored alone.
    texts = _real_texts()
    stories = load_stories([{"id": "trump-kim-summit-2018"}, *_stories_from(texts, random.Random(16))])
    enabled = [s for s in stories if s.enabled]
    matcher = Matcher(stories)
    alone = {s.id: Matcher([s]) for s in enabled}
    articles = _corpus_articles() + [
        Article(url=f"t{n}", final_url=f"t{n}", feed_url="f", title=r["title"], body=r["body"],
                summary=r.get("summary", ""), fetched_at=datetime(2018, 6, 12, tzinfo=UTC),
                published=datetime.fromisoformat(r["published"]) if r.get("published") else None, lang=r.get("lang"))
        for n, r in enumerate(texts)]
    passed = matched = evaluated = 0
    for article in articles:
        doc = Document.from_article(article)
        expected = [i for i, story in enumerate(enabled) if plain_is_candidate(story, doc)]
        assert matcher.candidates(doc) == expected, article.title
        every = matcher.match(article, every_candidate=True)
        assert every == [alone[enabled[i].id].explain(article, enabled[i].id)[0] for i in expected], article.title
        # What the similarity bounds and windows leave out is only ever "no match, not a near miss".
        results = matcher.match(article)
        assert results == [r for r in every if r.story_id in {x.story_id for x in results}], article.title
        assert {r.story_id for r in every if r.matched or r.near_miss} <= {r.story_id for r in results}, article.title
        passed += len(expected)
        evaluated += len(results)
        matched += sum(r.matched for r in results)
    # The comparison means something: many stories pass, some match, many are skipped, and the
    # bounds leave out many of those that pass.
    assert 0 < matched < evaluated < passed < len(enabled) * len(articles) / 2
    assert evaluated < 0.9 * passed


def test_shared_terms_are_the_same_mapping_held_once() -> None:
    first = {"".join(["sum", "mit"]): 1.0, "kim": round(0.123456, 4), "talks": 0.5}
    second = {"".join(["k", "im"]): round(0.123456, 4), "".join(["sum", "mit"]): 1.0}
    a, b = shared_terms(first), shared_terms(second)
    assert list(a.items()) == list(first.items()) and list(b.items()) == list(second.items())
    keys = {k: k for k in a}
    assert all(keys[k] is k for k in b) and a["kim"] is b["kim"]
