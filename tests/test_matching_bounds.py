"""The similarity bounds and required windows leave out only stories that could neither match nor
be a near miss: compared with every candidate evaluated, on stories and articles of real text."""
from __future__ import annotations

import json
import math
import os
import pickle
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor._types import Article
from monitor.matching import Matcher, load_stories
from monitor.matching.authoring import story_table
from monitor.matching.base import Document, Story
from monitor.matching.bounds import ReferenceBounds
from monitor.matching.names import derive_names
from monitor.matching.profile import derive_profile
from monitor.matching.rules import ReferenceRule, document_vector
from monitor.matching.text import split_paragraphs, tokenize

DATA = Path(__file__).parent / "data"


def _texts() -> list[dict[str, Any]]:
    from monitor.demo.site import load_articles

    rows = [dict(r) for r in load_articles()]
    rows += [json.loads(p.read_text(encoding="utf-8")) for p in sorted((DATA / "articles").glob("*.json"))]
    for path in sorted((DATA / "stories").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if len(r.get("body", "").split()) >= 40]


def _article(n: int, row: dict[str, Any], *, lang: str | None = None, naive: bool = False) -> Article:
    published = datetime.fromisoformat(row["published"]) if row.get("published") else None
    if published is not None and naive:
        published = published.replace(tzinfo=None)
    return Article(url=f"t{n}", final_url=f"t{n}", feed_url="f", title=row["title"], body=row["body"],
                   summary=row.get("summary", ""), fetched_at=datetime(2018, 6, 12, tzinfo=UTC),
                   published=published, lang=lang if lang is not None else row.get("lang"))


def _stories(texts: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Derived stories (as `stories add` makes them) from references that mix two real articles,
    in several languages and thresholds, some with a required query, learned names or an
    analyst's judgment; and faceted stories whose reference rule weighs enough to bound them."""
    tables: list[dict[str, Any]] = []
    for i in range(150):
        main, other = rng.sample(texts, 2)
        paragraphs = split_paragraphs(other["body"])
        body = main["body"] + "\n\n" + paragraphs[rng.randrange(len(paragraphs))]
        published = main.get("published")
        profile = derive_profile(body, title=main["title"], max_terms=None)
        table = story_table(profile, story_id=f"derived-{i}", title=main["title"],
                            names=derive_names(main["title"], body), lang=rng.choice(["en", "en", "en", "de", "fr"]),
                            published=datetime.fromisoformat(published).date() if published and i % 3 else None)
        table["threshold"] = rng.choice([0.5, 0.5, 0.3, 0.8])
        if i % 7 == 0:
            words = [w for w in dict.fromkeys(tokenize(main["body"])) if w.isalpha() and len(w) > 4]
            table["rules"] = [*table["rules"], {"name": "query", "required": True, "weight": 1.0,
                                                "params": {"query": f"{rng.choice(words)} OR {rng.choice(words)}"}}]
        if i % 11 == 0:
            table["_learned"] = tuple(n.name for n in derive_names(main["title"], main["body"])[:2])
        if i % 13 == 0:
            table["_judged"] = {f"t{rng.randrange(len(texts))}": "on"}
        tables.append(table)
    for i in range(20):
        a = rng.choice(texts)
        names = derive_names(a["title"], a["body"])[:3]
        words = [w for w in dict.fromkeys(tokenize(a["title"])) if w.isalpha() and len(w) > 3] or ["news"]
        tables.append({"id": f"facets-{i}", "title": a["title"], "bias": -9.0,
                       "names": [{"name": n.name, "aliases": list(n.aliases)} for n in names],
                       "facets": {"who": [n.name for n in names[:2]] or [words[0]], "what": words[:3]},
                       "terms": dict(derive_profile(a["body"], title=a["title"], max_terms=None).terms),
                       "rules": [{"name": "title", "weight": 1.0}, {"name": "coverage", "weight": 2.0},
                                 {"name": "reference", "weight": 30.0}]})
    return tables


def _load(tables: list[dict[str, Any]]) -> list[Story]:
    """The stories, with the learned names and judgments a story model adds (not table keys)."""
    extras = {t["id"]: (t.pop("_learned", ()), t.pop("_judged", {})) for t in tables}
    return [replace(s, learned=extras[s.id][0], judged=extras[s.id][1]) if s.id in extras else s
            for s in load_stories(tables)]


def test_bounds_never_under_the_similarity_the_reference_rule_computes() -> None:
    texts = _texts()
    stories = _load(_stories(texts, random.Random(3)))
    bounds = ReferenceBounds()
    references = [ReferenceRule(s, {}) for s in stories]
    for number, rule in enumerate(references):
        bounds.add(number, rule.terms, 0.0)
    bounds.freeze(len(stories))
    compared = close = 0
    for n, row in enumerate(texts):
        doc = Document.from_article(_article(n, row))
        vector, norm = document_vector(doc)
        bound = bounds.similarity(vector, norm)
        for number, rule in enumerate(references):
            exact = rule.evaluate(doc).details["similarity"]
            assert bound[number] >= exact - 0.00005, (row["title"], stories[number].id)   # exact is rounded
            assert bound[number] <= exact + 0.002 * max(1.0, exact) + 0.0001
            compared += 1
            close += exact > 0.05
    assert close > compared / 10


def test_pruned_matching_decides_as_every_candidate_evaluated() -> None:
    texts = _texts()
    stories = _load([{"id": "trump-kim-summit-2018"}, *_stories(texts, random.Random(16))])
    matcher = Matcher(stories)
    articles = [_article(n, row) for n, row in enumerate(texts)]
    # The same articles said to be German (the names path of stories in other languages) and with
    # naive dates (left to the window rule).
    articles += [_article(n, row, lang="de", naive=n % 2 == 0) for n, row in enumerate(texts)]
    passed = evaluated = decided = matched_past_window = 0
    for article in articles:
        every = matcher.match(article, every_candidate=True)
        results = matcher.match(article)
        kept = {r.story_id for r in results}
        assert results == [r for r in every if r.story_id in kept], article.title
        assert {r.story_id for r in every if r.matched or r.near_miss or "judged" in r.details} <= kept, article.title
        passed += len(every)
        evaluated += len(results)
        decided += sum(r.matched or r.near_miss for r in every)
        matched_past_window += sum(r.matched and r.details.get("window", {}).get("inside") is None for r in every)
    # Meaningful: many candidates, many decisions kept, most of the rest left out.
    assert 0 < decided < evaluated < passed
    assert evaluated - decided < (passed - decided) / 2


def test_a_judged_article_is_evaluated_whatever_its_bound() -> None:
    texts = _texts()
    row, other = texts[0], texts[-1]
    profile = derive_profile(other["body"], title=other["title"], max_terms=None)
    table = story_table(profile, story_id="judged", title=other["title"])
    del table["anchors"], table["anchors_needed"]     # no word prefilter: a candidate of every article
    article = _article(0, row)
    [plain] = load_stories([table])
    story = replace(plain, judged={"t0": "on"})
    assert Matcher([plain]).match(article) == []          # far under the floor: left out
    [result] = Matcher([story]).match(article)
    assert result.matched and "judged" in result.details


def test_outside_a_required_window_a_story_is_not_evaluated() -> None:
    texts = _texts()
    row = next(r for r in texts if r.get("published"))
    profile = derive_profile(row["body"], title=row["title"], max_terms=None)
    published = datetime.fromisoformat(row["published"])
    table = story_table(profile, story_id="windowed", title=row["title"], published=published.date(), window_days=3)
    [story] = load_stories([table])
    matcher = Matcher([story])
    [inside] = matcher.match(_article(0, row))
    assert inside.matched
    late = {**row, "published": published.replace(year=published.year + 1).isoformat()}
    assert matcher.match(_article(0, late)) == []
    [vetoed] = matcher.match(_article(0, late), every_candidate=True)
    assert not vetoed.matched and not vetoed.near_miss and vetoed.details["window"]["inside"] is False
    # A naive date is compared by the rule itself, as before.
    [naive] = matcher.match(_article(0, late, naive=True))
    assert not naive.matched
    assert math.isfinite(inside.score)


def test_bounds_copied_to_another_process_keep_every_candidate(tmp_path: Path) -> None:
    # Terms are keyed by this process's string hashes; another process hashes differently.
    bounds = ReferenceBounds()
    bounds.add(0, {"summit": 1.0, "talks": 0.5}, 0.5)
    bounds.add(1, {"harbour": 1.0}, 0.5)
    bounds.freeze(2)
    assert bounds.reachable([0, 1], {"summit": 2.0, "weather": 1.0}, math.sqrt(5.0), None) == [0]
    (tmp_path / "bounds.pickle").write_bytes(pickle.dumps(bounds))
    script = ("import math, pickle, sys; b = pickle.load(open(sys.argv[1], 'rb')); "
              "print(b.reachable([0, 1], {'summit': 2.0, 'weather': 1.0}, math.sqrt(5.0), None))")
    seed = "1" if hash("monitor.matching.bounds") != _hash_with_seed("1") else "2"
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bounds.pickle")], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed})
    assert out.stdout.strip() == "[0, 1]"


def _hash_with_seed(seed: str) -> int:
    out = subprocess.run([sys.executable, "-c", "print(hash('monitor.matching.bounds'))"], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed})
    return int(out.stdout)
