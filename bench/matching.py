"""Per-article matching time with the summit story alone and beside 1,000 generated stories.

    python bench/matching.py [--stories 1000] [--rounds 20] [--kind curated|derived|both]

Two kinds of generated stories, each as a real one of its kind:
- curated: three facets of names and terms and the built-in facet rules; a tenth of them use
  everyday news words ("talks", "president") so the prefilter lets some through;
- derived: what `monitor stories add` makes of a reference article (the whole term vector, names,
  the anchor prefilter, the calibrated similarity). Each reference is 800 words drawn with the
  frequencies of real news (the shipped background) around its own invented names and topic
  words, the way a real reference mixes everyday news language with its own proper names.
Prints median milliseconds per article for one story and for the crowd, the ratio, and the
target (median <= 2 ms per article with 1,000 stories).
"""
from __future__ import annotations

import argparse
import json
import os
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


def _derived(count: int, rng: random.Random) -> list[dict]:
    """Stories derived from generated references: 800 words drawn from the shipped background's
    word frequencies (real news vocabulary, each word as often as news uses it), around the
    story's own names and topic words, repeated as a reference article repeats them."""
    from monitor.matching.authoring import story_table
    from monitor.matching.names import derive_names
    from monitor.matching.profile import background, derive_profile

    prior = background()
    vocabulary = sorted(prior.df)
    frequency = [prior.df[w] for w in vocabulary]

    def invented() -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 10)))

    tables = []
    for i in range(count):
        names = [f"{invented().title()} {invented().title()}" for _ in range(3)]
        topic = [invented() for _ in range(6)]
        words = rng.choices(vocabulary, weights=frequency, k=800)
        sentences = [" ".join(words[j:j + 16]) for j in range(0, len(words), 16)]
        sentences = [f"{s.capitalize()}, said {rng.choice(names)} of the {rng.choice(topic)}." for s in sentences]
        body = "\n\n".join(" ".join(sentences[j:j + 5]) for j in range(0, len(sentences), 5))
        title = f"{names[0].split()[1]} and the {topic[0]}"
        profile = derive_profile(body, title=title, max_terms=None)
        tables.append(story_table(profile, story_id=f"derived-{i}", title=title, names=derive_names(title, body),
                                  lang="en"))
    return tables


def _median_ms(matcher: Matcher, articles: list[Article], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        for article in articles:
            started = time.perf_counter()
            matcher.match(article)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, nargs="+", default=[1000],
                        help="how many generated stories beside the summit (several: one run each)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kind", choices=("curated", "derived", "both"), default="both")
    args = parser.parse_args()
    articles = _articles()
    summit = {"id": "trump-kim-summit-2018"}
    one = Matcher(load_stories([summit]))
    single = _median_ms(one, articles, args.rounds)
    print(f"{len(articles)} articles x {args.rounds} rounds; generated stories: {args.kind}")
    print(f"1 story:              median {single:.3f} ms per article")
    for count in args.stories:
        rng = random.Random(7)
        generated = []
        if args.kind in ("curated", "both"):
            generated += _generated(count if args.kind == "curated" else count // 2, rng)
        if args.kind in ("derived", "both"):
            generated += _derived(count - len(generated), rng)
        before = _rss_mib()
        stories = load_stories([summit, *generated])
        many = Matcher(stories)
        memory = _rss_mib() - before
        del generated
        crowd = _median_ms(many, articles, args.rounds)
        evaluated = [len(many.candidates(Document.from_article(a))) for a in articles]
        print(f"{count + 1} stories:  median {crowd:.3f} ms per article ({crowd / single:.1f}x one story); "
              f"past the prefilter: mean {statistics.mean(evaluated):.1f}; stories and matcher take {memory:.0f} MiB")
        if count == 1000:
            print(f"target: median <= 2 ms per article with 1,000 stories: {'met' if crowd <= 2.0 else 'NOT met'}")
        if count >= 100_000:
            print(f"target: median <= 3x one story with {count:,} stories: {'met' if crowd <= 3 * single else 'NOT met'}")
        del many, stories


if __name__ == "__main__":
    main()
