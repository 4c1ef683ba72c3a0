"""Per-article matching time with the summit story alone and beside 1,000 generated stories.

    python bench/matching.py [--stories 1000] [--rounds 20]

Generated stories look like real ones (three facets of names and terms, the built-in rules);
a tenth of them use everyday news words ("talks", "president") so the prefilter lets some
through and their rules run. Prints median milliseconds per article and the ratio.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import time
from datetime import datetime
from pathlib import Path

from monitor._types import Article
from monitor.matching import Matcher, load_stories
from monitor.matching.base import Document

ARTICLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "articles"
COMMON = ["talks", "president", "minister", "meeting", "government", "agreement", "officials"]


def _articles() -> list[Article]:
    out = []
    for path in sorted(ARTICLES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        when = datetime.fromisoformat(data["published"])
        out.append(Article(url=path.name, final_url=path.name, feed_url="", title=data["title"], body=data["body"],
                           summary=data["summary"], fetched_at=when, published=when, lang=data["lang"]))
    return out


def _generated(count: int, rng: random.Random) -> list[dict]:
    def word() -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 9)))

    tables = []
    for i in range(count):
        common = i % 10 == 0
        facets = {label: ([rng.choice(COMMON)] if common else []) + [word() for _ in range(4)]
                  for label in ("who", "whom", "what")}
        tables.append({"id": f"generated-{i}", "title": f"Generated {i}", "facets": facets,
                       "terms": {word(): 1.0 for _ in range(20)},
                       "rules": [{"name": "title", "weight": 2.0}, {"name": "lead", "weight": 1.0},
                                 {"name": "coverage", "weight": 5.0}, {"name": "reference", "weight": 2.0}],
                       "bias": -4.0})
    return tables


def _median_ms(matcher: Matcher, articles: list[Article], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        for article in articles:
            started = time.perf_counter()
            matcher.match(article)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    articles = _articles()
    summit = {"id": "trump-kim-summit-2018"}
    one = Matcher(load_stories([summit]))
    many = Matcher(load_stories([summit, *_generated(args.stories, random.Random(7))]))
    single = _median_ms(one, articles, args.rounds)
    crowd = _median_ms(many, articles, args.rounds)
    print(f"{len(articles)} articles x {args.rounds} rounds")
    print(f"1 story:              median {single:.3f} ms per article")
    print(f"{args.stories + 1} stories:        median {crowd:.3f} ms per article")
    print(f"ratio: {crowd / single:.1f}x for {args.stories + 1}x the stories")
    evaluated = [len(many.candidates(Document.from_article(a))) for a in articles]
    print(f"stories past the prefilter: mean {statistics.mean(evaluated):.1f} of {args.stories + 1} per article")


if __name__ == "__main__":
    main()
