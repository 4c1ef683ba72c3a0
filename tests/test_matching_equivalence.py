"""The faster folding, tokenising and prefiltering of matching give exactly what the plain
versions give: the plain versions are written out here and compared on hard input. Facets,
profiles and queries share one tokeniser: `tokenize` gives the words `analyze` indexes."""
from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor._types import Article
from monitor.matching import Matcher, load_stories
from monitor.matching.base import Document
from monitor.matching.text import analyze, fold, is_cjk, parse_alias, tokenize

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


def plain_candidates(matcher: Matcher, doc: Document) -> list[int]:
    seen: dict[int, set[str]] = defaultdict(set)
    for token in doc.vocabulary:
        for index, label in matcher._exact.get(token, ()):
            seen[index].add(label)
        for length, table in matcher._prefix.items():
            for index, label in table.get(token[:length], ()):
                seen[index].add(label)
    found = [i for i, labels in seen.items() if len(labels) == matcher._facet_counts[i]]
    return sorted(found + matcher._unfiltered)


def test_prefilter_and_prefix_aliases_find_what_the_plain_scan_finds() -> None:
    rng = random.Random(7)
    words = ["talks", "talkative", "summit", "summitry", "gipfel", "gipfeltreffen", "kim", "korea",
             "koreanische", "nordkorea", "ny", "n", "trump", "washington", "pyongyang", "diplomacy"]
    stories = []
    for i in range(60):
        facets = {label: [rng.choice(words) + rng.choice(["", "*"]) for _ in range(3)] for label in ("a", "b")}
        facets["c"] = [rng.choice(["n*", "ny*", "ko*", "summ*"])]     # prefixes shorter than the head test
        stories.append({"id": f"s{i}", "title": f"Story {i}", "facets": facets,
                        "rules": [{"name": "title", "weight": 2.0}, {"name": "coverage", "weight": 3.0}]})
    matcher = Matcher(load_stories(stories))
    when = datetime(2018, 6, 12, tzinfo=UTC)
    for n in range(200):
        body = " ".join(rng.choice(words + ["the", "and", "Nordkoreas", "NY"]) for _ in range(rng.randint(0, 60)))
        doc = Document.from_article(Article(url=f"u{n}", final_url=f"u{n}", feed_url="f", title=body[:30],
                                            body=body, fetched_at=when))
        assert matcher.candidates(doc) == plain_candidates(matcher, doc)
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
