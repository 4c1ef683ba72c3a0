"""Near-duplicate clustering of matches: copies join, different articles on one topic do not."""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor._types import StoredMatch
from monitor.report.cluster import MIN_CONTAINMENT, cluster_matches, is_copy, shingles

T0 = datetime(2018, 5, 24, 14, 0, tzinfo=UTC)
DEV_CORPUS = Path("/work/shared/corpus/dev.jsonl")

WIRE = [
    "SEOUL (Wire) - North Korea said on Friday it remained willing to talk with the United States "
    "at any time and in any format, hours after President Donald Trump abruptly called off the "
    "planned meeting in Singapore with leader Kim Jong Un.",
    "First Vice Foreign Minister Kim Kye Gwan said in a statement carried by the official news agency "
    "that the decision to cancel was extremely regrettable and did not match the wishes of people "
    "around the world who wanted peace on the peninsula.",
    "The statement was unusually restrained in tone. It praised the American president for showing "
    "more courage than his predecessors and said the North had been sincerely preparing for the meeting.",
    "Officials in Seoul welcomed the message and said the leaders of the two Koreas were in close "
    "contact. Analysts said the reply left the door open for the talks to be revived within days.",
    "The White House did not immediately respond to a request for comment on the statement from "
    "Pyongyang, which was released early on Friday morning local time.",
]

# A different article on the same event: the same names and many of the same words, own sentences.
OTHER_ON_SAME_EVENT = [
    "WASHINGTON - President Donald Trump on Friday welcomed a conciliatory statement from North Korea, "
    "saying it was very good news and that talks with Kim Jong Un could yet go ahead in Singapore.",
    "Speaking on the South Lawn before leaving for a commencement address, Trump said the United States "
    "would see what happens and that the meeting could even take place on June 12 as first planned.",
    "The president had cancelled the meeting a day earlier in a letter that blamed the open hostility "
    "of recent North Korean remarks. Kim Kye Gwan, a veteran negotiator, replied that Pyongyang was "
    "still willing to sit down at any time.",
    "Aides said preparations in Singapore had not been fully halted. Advance teams for both sides "
    "were expected to keep in touch through the weekend, officials in Seoul said.",
]


def match(url: str, body: str, *, outlet: str = "Outlet", minutes: int = 0, title: str = "t",
          canonical_url: str | None = None, score: float = 0.8) -> StoredMatch:
    when = T0 + timedelta(minutes=minutes)
    return StoredMatch(
        story_id="s", score=score, evidence=(), matched_at=when, article_id=0, url=url,
        canonical_url=canonical_url or url, feed_url="https://feeds.example/rss", title=title,
        outlet=outlet, published=when, fetched_at=when, lang="en", body=body,
    )


def groups(matches: list[StoredMatch]) -> set[frozenset[str]]:
    return {frozenset(m.url for m in c.members) for c in cluster_matches(matches)}


def test_exact_copies_share_a_cluster_named_after_the_earliest_copy() -> None:
    body = "\n\n".join(WIRE)
    later = match("https://b.example/copy", body, outlet="B", minutes=30)
    first = match("https://a.example/original", body, outlet="A", minutes=0)
    (cluster,) = cluster_matches([later, first])
    assert cluster.first == first
    assert cluster.members == (first, later)
    digest = hashlib.sha256(b"https://a.example/original").hexdigest()[:8]
    assert cluster.id == "c-" + digest


def test_retitled_trimmed_reordered_and_edited_copies_join() -> None:
    original = match("https://wire.example/1", "\n\n".join(WIRE), outlet="Wire", title="N. Korea still open to talks")
    trimmed = match("https://a.example/1", "\n\n".join(WIRE[:3]), outlet="A", minutes=5,
                    title="Pyongyang says it is ready to talk 'at any time'")
    reordered = match("https://b.example/1", "\n\n".join([WIRE[1], WIRE[0], WIRE[3], WIRE[2]]),
                      outlet="B", minutes=9, title="Kim's envoy: cancellation 'regrettable'")
    edited_text = "\n\n".join(WIRE).replace("SEOUL (Wire) - ", "SEOUL - ").replace(
        "extremely regrettable", "very regrettable").replace("unusually restrained", "notably mild")
    boilerplate = ("Sign up for our morning briefing. Follow us on social media for more. "
                   "Copyright 2018 B Herald, all rights reserved.")
    edited = match("https://c.example/1", f"Advertisement\n\n{edited_text}\n\n{boilerplate}",
                   outlet="C", minutes=12, title="North Korea responds")
    other = match("https://d.example/1", "\n\n".join(OTHER_ON_SAME_EVENT), outlet="D", minutes=3)
    assert groups([original, trimmed, reordered, edited, other]) == {
        frozenset({original.url, trimmed.url, reordered.url, edited.url}),
        frozenset({other.url}),
    }


def test_different_articles_on_one_topic_stay_apart_despite_shared_words() -> None:
    a = shingles("\n\n".join(WIRE))
    b = shingles("\n\n".join(OTHER_ON_SAME_EVENT))
    assert len(a & b) < 0.1 * min(len(a), len(b))
    assert not is_copy(a, b)


def test_same_canonical_url_is_one_article_even_without_text() -> None:
    amp = match("https://a.example/amp/story", "", canonical_url="https://a.example/story", minutes=1)
    page = match("https://a.example/story", "", minutes=0)
    assert groups([amp, page]) == {frozenset({amp.url, page.url})}


def test_a_few_shared_words_are_too_little_to_call_a_copy() -> None:
    a = match("https://a.example/1", "Trump cancels summit with Kim", outlet="A")
    b = match("https://b.example/1", "Trump cancels summit with Kim", outlet="B")
    assert len(cluster_matches([a, b])) == 2


def test_an_outlets_own_furniture_does_not_join_its_articles() -> None:
    furniture = ("Most read this week: the stories our readers could not put down. Sign up for the "
                 "Daily Briefing newsletter and get every headline in your inbox before breakfast.")
    articles = [
        match(f"https://a.example/{i}", f"{text}\n\n{furniture}", outlet="A", minutes=i)
        for i, text in enumerate([
            "Rain is expected across the valley on Sunday.",
            "The city council approved a new budget for parks.",
            "A local bakery won a regional prize for its bread.",
        ])
    ]
    assert len(cluster_matches(articles)) == 3


def test_result_does_not_depend_on_input_order() -> None:
    body = "\n\n".join(WIRE)
    matches = [match(f"https://o{i}.example/x", body if i % 2 else "\n\n".join(OTHER_ON_SAME_EVENT),
                     outlet=f"O{i}", minutes=i) for i in range(8)]
    shuffled = matches[:]
    random.Random(7).shuffle(shuffled)
    assert cluster_matches(shuffled) == cluster_matches(matches)


@pytest.mark.slow
def test_thousands_of_matches_cluster_without_comparing_all_pairs() -> None:
    rng = random.Random(3)
    vocabulary = [f"w{n}" for n in range(5000)]
    texts = [" ".join(rng.choices(vocabulary, k=300)) for _ in range(300)]
    matches = []
    for i in range(3000):   # each text carried ten times, one word changed in each copy
        words = texts[i % 300].split()
        words[rng.randrange(len(words))] = "changed"
        matches.append(match(f"https://o{i}.example/a", " ".join(words), outlet=f"O{i % 7}", minutes=i))
    started = time.perf_counter()
    clusters = cluster_matches(matches)
    assert time.perf_counter() - started < 15   # all pairs would be 4.5 million comparisons
    assert len(clusters) == 300
    assert all(len(c.members) == 10 for c in clusters)


@pytest.mark.skipif(not DEV_CORPUS.exists(), reason="the labelled dev corpus is not here")
def test_dev_corpus_copies_join_and_nothing_unrelated_does() -> None:
    rows = [json.loads(line) for line in DEV_CORPUS.read_text(encoding="utf-8").splitlines()]
    url = {r["id"]: f"https://{r['feed']}.example{r['path']}" for r in rows}
    matches = [match(url[r["id"]], r["body"], outlet=r["outlet"], minutes=i) for i, r in enumerate(rows)]
    cluster_of = {m.url: c.id for c in cluster_matches(matches) for m in c.members}
    pairs = [(r["id"], r["dup_of"]) for r in rows if r["dup_of"]]
    together = sum(cluster_of[url[a]] == cluster_of[url[b]] for a, b in pairs)
    assert together >= 0.9 * len(pairs)
    text_of = {r["id"]: r["dup_of"] or r["id"] for r in rows}
    for a, b in itertools.combinations(rows, 2):
        if cluster_of[url[a["id"]]] == cluster_of[url[b["id"]]]:
            assert text_of[a["id"]] == text_of[b["id"]], (a["id"], b["id"])
    # The margin: unrelated rows stay far below the threshold.
    sets = {r["id"]: shingles(r["body"]) for r in rows}
    worst = max(len(sets[a["id"]] & sets[b["id"]]) / min(len(sets[a["id"]]), len(sets[b["id"]]))
                for a, b in itertools.combinations(rows, 2) if text_of[a["id"]] != text_of[b["id"]])
    assert worst < MIN_CONTAINMENT / 2
