"""MonitorService: entries handed over by another aggregator take the monitor's own path.

Real pages over HTTP on 127.0.0.1, a real SQLite file (and PostgreSQL when configured): the
entries are queued durably, processed by the worker, and end as stored articles with page
text and matches, once, whatever is handed over twice.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sitegen import article_url, make_article, serve_articles

from monitor.config import DatabaseSettings, FetchSettings, Settings
from monitor.db import inbox
from monitor.feeds import external_entry
from monitor.service import MonitorService

STORY = "trump-kim-summit-2018"
ARTICLES = Path(__file__).parent / "data" / "articles"


def _article(name: str) -> dict:
    data = json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))
    return make_article(name, title=data["title"], summary=data["summary"], body=data["body"],
                        published=data["published"], lang=data["lang"])


def _settings(db_url: str) -> Settings:
    return replace(Settings(), database=DatabaseSettings(url=db_url),
                   fetch=replace(FetchSettings(), allow_private_addresses=True),
                   stories=({"id": STORY},))


def _entries(base_url: str, articles: list[dict]) -> list:
    # Only the summary travels with the entry, as in most feeds: the body must come from the page.
    return [external_entry(id=f"urn:{a['id']}", link=article_url(base_url, a), title=a["title"],
                           summary_html=f"<p>{a['summary']}</p>",
                           published=datetime.fromisoformat(a["published"])) for a in articles]


def _stored(svc: MonitorService) -> dict[str, tuple[str, str]]:
    return {a.title: (a.source, a.body) for a in svc.store.iter_articles()}


def test_worker_processes_handed_over_entries_like_its_own(tmp_path: Path, db_url: str) -> None:
    on, off = _article("on-summit-day"), _article("neg-kardashian")
    with serve_articles(tmp_path, [on, off]) as (site, _feeds), MonitorService(_settings(db_url)) as svc:
        svc.start()
        assert svc.submit("miniflux", f"{site.base_url}/feed", _entries(site.base_url, [on, off]),
                          feed_title="Test Gazette") == 2
        assert svc.wait_idle(timeout=120)
        stored = _stored(svc)
        assert stored[on["title"]][0] == "page"                       # extracted from the page
        assert on["body"].split("\n\n")[1][:60] in stored[on["title"]][1]
        matched = {m.title for m in svc.store.matches([STORY], None, None)}
        assert matched == {on["title"]}
        feed = svc.store.get_feed(f"{site.base_url}/feed")
        assert feed is not None and feed.source == "miniflux" and not feed.enabled   # never polled by us

        # The same entries again (a webhook retried, reader re-sending): nothing stored twice.
        svc.submit("miniflux", f"{site.base_url}/feed", _entries(site.base_url, [on, off]))
        assert svc.wait_idle(timeout=60)
        assert svc.store.count_articles() == 2
        assert len(svc.store.matches([STORY], None, None)) == 1


def test_queued_entries_survive_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    on = _article("on-revival")
    with serve_articles(tmp_path, [on]) as (site, _feeds):
        with MonitorService(_settings(sqlite_url)) as svc:      # no worker: accepted, not processed
            svc.submit("reader", f"{site.base_url}/feed", _entries(site.base_url, [on]))
            assert svc.pending() == 1 and svc.store.count_articles() == 0
        with MonitorService(_settings(sqlite_url)) as svc:
            summary = svc.process_pending()
            assert summary.new_articles == 1 and summary.new_matches == 1
            assert svc.pending() == 0


def test_unusable_entries_are_recorded_and_do_not_stop_the_others(tmp_path: Path, sqlite_url: str) -> None:
    on = _article("on-aftermath")
    hostile = [
        external_entry(id="js", link="javascript:alert(1)", title="<script>x</script>No link"),
        external_entry(id="private", link="http://10.255.255.1/article", title="Private address",
                       summary_html="Only the summary of an article on a private address."),
    ]
    settings = replace(_settings(sqlite_url), fetch=replace(FetchSettings(), allow_private_addresses=False))
    with serve_articles(tmp_path, [on]) as (site, _feeds), MonitorService(settings) as svc:
        summary = svc.ingest("reader", f"{site.base_url}/feed", hostile + _entries(site.base_url, [on]))
        stored = _stored(svc)
        # the page on 127.0.0.1 is refused too (private addresses are off): the entry's own text stands in
        assert stored["Private address"][0] == "summary"
        assert stored[on["title"]][0] == "summary"
        assert "No link" not in " ".join(stored)                 # nothing to fetch, nothing to store
        assert summary.new_articles == 2 and summary.pages_failed == 2
        assert svc.pending() == 0


def test_unknown_origin_is_refused(sqlite_url: str) -> None:
    with MonitorService(_settings(sqlite_url)) as svc, pytest.raises(ValueError, match="unknown origin"):
        svc.submit("rss-bridge", "https://example.org/feed", [external_entry(id="a", link="https://example.org/a")])


def test_inbox_claims_keep_two_workers_apart(sqlite_url: str) -> None:
    with MonitorService(_settings(sqlite_url)) as svc:
        svc.submit("reader", "https://example.org/feed", [external_entry(id="a", link="https://example.org/a")])
        now = datetime.now(UTC)
        first = inbox.take(svc.store, now, limit=10, claim_seconds=60)
        assert len(first) == 1 and first[0].entries[0].link == "https://example.org/a"
        assert inbox.take(svc.store, now, limit=10, claim_seconds=60) == []     # claimed
        inbox.release(svc.store, [first[0].id])
        assert len(inbox.take(svc.store, now, limit=10, claim_seconds=60)) == 1  # handed back


def test_handed_over_entries_end_exactly_as_the_monitors_own_fetch(tmp_path: Path) -> None:
    """One ingestion path: the same feed, fetched by the monitor itself or handed over entry by
    entry, stores the same articles (text, title, source) and the same matches and scores."""
    import httpx

    from monitor.daemon import run_once
    from monitor.db.store import Store
    from monitor.feeds import parse_feed
    from monitor.matching import load_stories
    from monitor.runtime import Runtime

    articles = [_article(n) for n in ("on-summit-day", "on-korean", "neg-kardashian", "neg-hanoi-2019")]
    with serve_articles(tmp_path / "site", articles) as (site, feed_urls):
        own = replace(_settings(f"sqlite:///{tmp_path / 'own.db'}"), feeds=())
        with Store.open(own.database_url, create=True) as store:
            for url in feed_urls:
                store.add_feed(url)
            run_once(Runtime(own, store, load_stories(own.stories)))
            mine = _snapshot(store)
        with MonitorService(_settings(f"sqlite:///{tmp_path / 'handed.db'}")) as svc:
            for url in feed_urls:
                response = httpx.get(url)
                parsed = parse_feed(response.content, url=url, headers=dict(response.headers))
                svc.submit("reader", url, list(parsed.entries), feed_title=parsed.title)
            svc.process_pending()
            theirs = _snapshot(svc.store)
    assert mine[0] and any(mine[1].values())
    assert theirs == mine


def _snapshot(store: object) -> tuple[dict, dict]:
    stored = {a.url: (a.title, a.body, a.source, a.lang) for a in store.iter_articles()}  # type: ignore[attr-defined]
    matches = {(m.story_id, m.canonical_url): round(m.score, 6) for m in store.matches([STORY], None, None)}  # type: ignore[attr-defined]
    return stored, matches


def test_two_callers_hand_entries_over_at_the_same_time(db_url: str) -> None:
    """The service takes no lock: two threads ingest at once, each in a pass of its own on the one
    pipeline, and both end stored as if they had taken turns. Each page is answered only once the
    other caller's page is asked for too, so callers made to take turns would fail here: the first
    page would go unanswered, and its article would keep only the entry's summary."""
    import threading

    from _httpserver import LocalServer, _send
    from test_hostile import HTML_TYPE, article_page

    both_asked = threading.Barrier(2)

    def page(title: str) -> Any:
        body = article_page(title, f"{title} is the page's own text, which the entry does not carry.")

        def handler(h: Any) -> None:
            try:
                both_asked.wait(timeout=10)
            except threading.BrokenBarrierError:
                _send(h, 503, {"Content-Type": "text/plain"}, b"the other caller never came")
                return
            _send(h, 200, HTML_TYPE, body)
        return handler

    with LocalServer({"/a": page("Harbour reopens"), "/b": page("Bridge closes")}) as server, \
            MonitorService(_settings(db_url)) as svc:
        summaries: dict[str, Any] = {}
        failures: list[BaseException] = []

        def hand_over(name: str, title: str) -> None:
            entry = external_entry(id=f"urn:{name}", link=server.url(f"/{name}"), title=title,
                                   summary_html=f"<p>{title}: the summary alone.</p>")
            try:
                summaries[name] = svc.ingest("reader", server.url(f"/feed-{name}"), [entry])
            except BaseException as e:      # noqa: BLE001 - reported below, on the test's thread
                failures.append(e)

        callers = [threading.Thread(target=hand_over, args=("a", "Harbour reopens")),
                   threading.Thread(target=hand_over, args=("b", "Bridge closes"))]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=60)
        assert not failures and not any(caller.is_alive() for caller in callers)
        assert [(summaries[n].new_articles, summaries[n].pages_failed) for n in ("a", "b")] == [(1, 0), (1, 0)]
        stored = _stored(svc)
        assert {title: source for title, (source, _body) in stored.items()} == \
            {"Harbour reopens": "page", "Bridge closes": "page"}
        assert "the page's own text" in stored["Bridge closes"][1]


class _ExplodingRule:
    """Raises on every article; on the first caller's article only once the second caller's pass
    has ended, so that the two passes overlap whatever the scheduling."""

    name = "exploding"
    version = "1"
    second_pass_done: Any = None

    def __init__(self, story: Any, params: Any) -> None:
        pass

    def evaluate(self, doc: Any) -> Any:
        if doc.url.endswith("/a"):
            assert _ExplodingRule.second_pass_done.wait(timeout=30)
        raise RuntimeError("boom")


def test_two_passes_at_once_each_count_their_own_rule_errors(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two callers' passes share the pipeline's matcher: each summary counts the rule errors of its
    own articles, not the other pass's (one shared count gave the pass that ended last both)."""
    import logging
    import threading

    from _httpserver import LocalServer, _send
    from test_hostile import HTML_TYPE, article_page

    from monitor.matching import RuleSpec, Story

    _ExplodingRule.second_pass_done = threading.Event()
    story = Story(id="exploding", title="Every article", anchors_needed=0,
                  rules=(RuleSpec("exploding", factory=_ExplodingRule, weight=1.0),))

    first_asked = threading.Event()     # the first pass has started: its page is asked for

    def page(title: str, *, first: bool) -> Any:
        def handler(h: Any) -> None:
            if first:
                first_asked.set()
            else:
                first_asked.wait(timeout=30)
            _send(h, 200, HTML_TYPE, article_page(title, f"{title}: the page's own text."))
        return handler

    with caplog.at_level(logging.CRITICAL, logger="monitor.matching"), \
            LocalServer({"/a": page("Harbour reopens", first=True), "/b": page("Bridge closes", first=False)}) as server, \
            MonitorService(_settings(db_url), stories=[story]) as svc:
        summaries: dict[str, Any] = {}

        def hand_over(name: str) -> None:
            entry = external_entry(id=f"urn:{name}", link=server.url(f"/{name}"), title=name)
            summaries[name] = svc.ingest("reader", server.url(f"/feed-{name}"), [entry])
            if name == "b":
                _ExplodingRule.second_pass_done.set()

        first = threading.Thread(target=hand_over, args=("a",))
        first.start()
        hand_over("b")
        first.join(timeout=60)
        assert not first.is_alive()
    assert [(summaries[n].new_articles, summaries[n].rule_errors) for n in ("a", "b")] == [(1, 1), (1, 1)]
