"""The reader plugin with the real reader library: reader fetches the feeds, the monitor gets the entries.

A real HTTP server on 127.0.0.1 serves an RSS feed (changed between updates) and article pages
rendered like a news site's; reader polls the feed into its own SQLite database, the plugin hands
the entries to the monitor's inbox, the worker fetches and extracts the pages, matches and
stores, in a real SQLite file (and PostgreSQL when configured).
"""
from __future__ import annotations

import email.utils
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
from _httpserver import LocalServer
from sitegen import article_url, make_article, render_site

reader_lib = pytest.importorskip("reader")
from reader import EntryUpdateStatus, make_reader  # noqa: E402
from reader.exceptions import PluginInitError  # noqa: E402

from monitor.cli import main  # noqa: E402
from monitor.db import inbox  # noqa: E402
from monitor.integrations.reader import close_monitor, monitor_for, plugin, sync  # noqa: E402

STORY = "trump-kim-summit-2018"
ARTICLES = Path(__file__).parent / "data" / "articles"
PLUGIN = "monitor.integrations.reader:init_reader"


def _article(name: str, feed: str = "test-gazette") -> dict:
    data = json.loads((ARTICLES / f"{name}.json").read_text(encoding="utf-8"))
    return make_article(name, feed=feed, path=f"/2018/{name}", title=data["title"], summary=data["summary"],
                        body=data["body"], published=data["published"], lang=data["lang"])


class News:
    """Article pages and RSS feeds on a LocalServer; feeds can be rewritten between updates."""

    def __init__(self, tmp_path: Path, articles: list[dict]) -> None:
        self.server = LocalServer()
        self.base = self.server.url("").rstrip("/")
        root = tmp_path / "site"
        render_site(articles, root, self.base)
        self.articles = {a["id"]: a for a in articles}
        for a in articles:
            page = root / a["feed"] / a["path"].strip("/") / "index.html"
            self.server.routes[self.path_of(a)] = (200, {"Content-Type": "text/html; charset=utf-8"}, page.read_bytes())

    def url(self, path: str) -> str:
        return self.server.url(path)

    def link(self, name: str) -> str:
        return article_url(self.base, self.articles[name])

    def path_of(self, article: dict) -> str:
        return urlsplit(article_url(self.base, article)).path

    def page_requests(self, name: str) -> int:
        return self.server.paths().count(self.path_of(self.articles[name]))

    def serve_feed(self, path: str, items: list[dict]) -> str:
        """RSS 2.0 at `path` with `items` (guid, title, link, description, published); its URL."""
        body = "".join(
            f"<item><guid isPermaLink=\"false\">{escape(i['guid'])}</guid><title>{escape(i['title'])}</title>"
            + (f"<link>{escape(i['link'])}</link>" if i.get("link") else "")
            + f"<description>{escape(i.get('description', ''))}</description>"
            + (f"<pubDate>{email.utils.format_datetime(i['published'])}</pubDate>" if i.get("published") else "")
            + "</item>\n" for i in items)
        rss = ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Test Gazette</title>'
               f"<link>{self.base}/</link><description>news</description>\n{body}</channel></rss>\n")
        self.server.routes[path] = (200, {"Content-Type": "application/rss+xml"}, rss.encode("utf-8"))
        return self.url(path)

    def item(self, name: str, **changes: object) -> dict:
        """A feed item for an article: only its summary travels in the feed, the body is on the page."""
        a = self.articles[name]
        item = {"guid": f"urn:test:{name}", "title": a["title"], "link": self.link(name),
                "description": a["summary"], "published": datetime.fromisoformat(a["published"])}
        item.update(changes)
        return item

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def news(tmp_path: Path):
    site = News(tmp_path, [_article("on-summit-day"), _article("neg-kardashian"), _article("on-revival")])
    yield site
    site.close()


def write_config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n\n[fetch]\nallow_private_addresses = true\n\n'
                    f'[extract]\nworkers = 1\n\n[[stories]]\nid = "{STORY}"\n', encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, sqlite_url: str) -> Path:
    return write_config(tmp_path, sqlite_url)


def _stored(reader) -> dict[str, tuple[str, str]]:
    return {a.title: (a.source, a.body) for a in monitor_for(reader).store.iter_articles()}


def _matched(reader) -> set[str]:
    return {m.title for m in monitor_for(reader).store.matches([STORY], None, None)}


def _report(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["--config", str(config), "report", "--format", "json",
                 "--since", "2017-01-01", "--until", "2020-01-01"]) == 0
    return json.loads(capsys.readouterr().out)


def _idle(reader) -> None:
    svc = monitor_for(reader)
    assert svc.wait_idle(timeout=120)
    assert inbox.counts(svc.store)[0] == 0


def test_reader_update_stores_extracted_articles_and_matches(tmp_path: Path, db_url: str, news: News,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, db_url)
    monkeypatch.setenv("MONITOR_CONFIG", str(config))
    feed = news.serve_feed("/rss", [news.item("on-summit-day"), news.item("neg-kardashian")])
    # The plugin as reader resolves it by name: the monitor is found through $MONITOR_CONFIG.
    reader = make_reader(str(tmp_path / "reader.sqlite"), plugins=[PLUGIN])
    try:
        reader.add_feed(feed)
        reader.update_feeds()
        _idle(reader)

        stored = _stored(reader)
        on, off = news.articles["on-summit-day"], news.articles["neg-kardashian"]
        assert set(stored) == {on["title"], off["title"]}
        source, body = stored[on["title"]]
        # The page's text, not the feed's summary: a later paragraph of the article is there.
        assert source == "page" and on["body"].split("\n\n")[2][:80] in body and len(body) > 2 * len(on["summary"])
        assert _matched(reader) == {on["title"]}
        [monitor_feed] = monitor_for(reader).store.list_feeds()
        assert (monitor_feed.url, monitor_feed.source, monitor_feed.enabled) == (feed, "reader", False)
        assert monitor_feed.title == "Test Gazette"
    finally:
        close_monitor(reader)
        reader.close()

    report = _report(config, capsys)
    summit = next(s for s in report["stories"] if s["id"] == STORY)
    assert [m["title"] for m in summit["matches"]] == [on["title"]]
    assert summit["matches"][0]["url"] == news.link("on-summit-day")


def test_unchanged_and_modified_entries_store_nothing_twice(tmp_path: Path, config: Path, news: News) -> None:
    feed = news.serve_feed("/rss", [news.item("on-summit-day"), news.item("neg-kardashian")])
    statuses: list[tuple[str, EntryUpdateStatus]] = []
    reader = make_reader(str(tmp_path / "reader.sqlite"), plugins=[plugin(config)])
    reader.after_entry_update_hooks.append(lambda r, e, status: statuses.append((e.id, status)))
    try:
        reader.add_feed(feed)
        reader.update_feeds()
        _idle(reader)
        first = _stored(reader)
        assert len(first) == 2 and news.page_requests("on-summit-day") == 1

        # The same feed again: reader sees nothing new, the monitor stores nothing.
        reader.update_feeds(scheduled=False)
        _idle(reader)
        assert _stored(reader) == first

        # An edited entry (reader: MODIFIED) and a new one (NEW) in one update.
        statuses.clear()
        news.serve_feed("/rss", [news.item("on-revival"),
                                 news.item("on-summit-day", title="UPDATED: " + news.articles["on-summit-day"]["title"],
                                           description="Corrected summary.")])
        reader.update_feeds(scheduled=False)
        _idle(reader)
        assert ("urn:test:on-summit-day", EntryUpdateStatus.MODIFIED) in statuses
        assert ("urn:test:on-revival", EntryUpdateStatus.NEW) in statuses
        stored = _stored(reader)
        assert len(stored) == 3 and not any(t.startswith("UPDATED") for t in stored)
        assert news.page_requests("on-summit-day") == 1          # the modified entry fetched nothing
        assert _matched(reader) == {news.articles["on-summit-day"]["title"], news.articles["on-revival"]["title"]}
        assert sync(reader) == 0                                  # and nothing is left to catch up
    finally:
        close_monitor(reader)
        reader.close()


def test_odd_entries_and_broken_feeds_do_not_break_the_update(tmp_path: Path, config: Path, news: News,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    good = news.serve_feed("/rss", [
        news.item("on-summit-day"),
        {"guid": "no-link", "title": "A bulletin without a link", "description": "Only text in the feed."},
        {"guid": "js-link", "title": "A hostile link", "link": "javascript:alert(1)", "description": "Click me."},
        {"guid": "missing", "title": "A page that is gone", "link": news.url("/gone"), "description": "Gone."},
    ])
    news.server.routes["/broken"] = (200, {"Content-Type": "application/rss+xml"}, b"<rss><channel><item>")
    news.server.routes["/down"] = (500, {"Content-Type": "text/plain"}, b"down")
    reader = make_reader(str(tmp_path / "reader.sqlite"), plugins=[plugin(config)])
    try:
        for url in (news.url("/broken"), news.url("/down"), good):
            reader.add_feed(url)
        with caplog.at_level(logging.WARNING):
            reader.update_feeds()                                  # raises nothing
        _idle(reader)
        assert len(list(reader.get_entries(feed=good))) == 4
        stored = _stored(reader)
        # Entries without a usable link are not articles; a page that is gone leaves the feed's text.
        assert set(stored) == {news.articles["on-summit-day"]["title"], "A page that is gone"}
        assert stored[news.articles["on-summit-day"]["title"]][0] == "page"
        assert stored["A page that is gone"][0] == "summary"
        assert not any("javascript" in p for p in news.server.paths())
        assert _matched(reader) == {news.articles["on-summit-day"]["title"]}
        assert not [r for r in caplog.records if r.name.startswith("monitor.integrations")]
    finally:
        close_monitor(reader)
        reader.close()


def test_catch_up_hands_over_what_reader_got_without_the_plugin(tmp_path: Path, config: Path, news: News) -> None:
    feed = news.serve_feed("/rss", [news.item("on-summit-day"), news.item("neg-kardashian")])
    db = str(tmp_path / "reader.sqlite")
    with make_reader(db) as plain:                # reader alone, e.g. its own cron job, or a crash
        plain.add_feed(feed)
        plain.update_feeds()
        plain.close()

    reader = make_reader(db, plugins=[plugin(config)])
    try:
        assert sync(reader) == 2
        _idle(reader)
        assert _matched(reader) == {news.articles["on-summit-day"]["title"]}
        assert sync(reader) == 0                  # the feed is marked caught up: nothing compared again
    finally:
        close_monitor(reader)
        reader.close()

    # reader alone again, with one new entry: only that one is missing, and only it is handed over.
    news.serve_feed("/rss", [news.item("on-revival"), news.item("on-summit-day"), news.item("neg-kardashian")])
    with make_reader(db) as plain:
        plain.update_feeds(scheduled=False)
        plain.close()
    reader = make_reader(db, plugins=[plugin(config)])
    try:
        # No explicit sync: the next update with the plugin notices the feed is behind.
        reader.update_feeds(scheduled=False)
        _idle(reader)
        assert len(_stored(reader)) == 3
        assert news.page_requests("on-summit-day") == 1 and news.page_requests("on-revival") == 1
        assert sync(reader) == 0
    finally:
        close_monitor(reader)
        reader.close()


def test_entries_the_monitor_could_not_take_are_handed_over_later(tmp_path: Path, config: Path, news: News,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    feed = news.serve_feed("/rss", [news.item("on-summit-day"), news.item("neg-kardashian")])
    reader = make_reader(str(tmp_path / "reader.sqlite"), plugins=[plugin(config)])
    try:
        reader.add_feed(feed)
        engine = monitor_for(reader).store.engine
        with engine.begin() as conn:              # the monitor's database breaks under the plugin
            conn.exec_driver_sql("ALTER TABLE inbox RENAME TO inbox_away")
        with caplog.at_level(logging.ERROR, logger="monitor.integrations.reader"):
            reader.update_feeds()                 # reader's own update is not disturbed
        assert "2 entries of" in caplog.text and "could not be handed over" in caplog.text
        assert len(list(reader.get_entries())) == 2
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE inbox_away RENAME TO inbox")

        reader.update_feeds(scheduled=False)      # nothing new for reader; the plugin catches up
        _idle(reader)
        assert len(_stored(reader)) == 2
        assert _matched(reader) == {news.articles["on-summit-day"]["title"]}
    finally:
        close_monitor(reader)
        reader.close()


def test_monitor_reader_sync_command(tmp_path: Path, config: Path, news: News,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "reader.sqlite"
    may = news.item("on-revival", published=datetime(2018, 5, 26, 9, 0, tzinfo=UTC))
    first = news.serve_feed("/rss", [news.item("on-summit-day"), may])
    second = news.serve_feed("/other", [news.item("neg-kardashian")])
    with make_reader(str(db)) as plain:           # reader's history, before the monitor is involved
        plain.add_feed(first)
        plain.update_feeds()
        plain.add_feed(second)                    # new: due at reader's next update
        plain.close()

    # Catch up from June only (the May entry is skipped for good), then reader updates its due feeds.
    assert main(["--config", str(config), "reader-sync", str(db), "--update", "--since", "2018-06-01"]) == 0
    out = capsys.readouterr().out
    assert "reader: 1 feed updated, 0 failed; 1 new and 0 modified entries handed over" in out
    assert "catch-up: 1 entry" in out and "2 new articles" in out and f"{STORY} 1" in out

    report = _report(config, capsys)
    summit = next(s for s in report["stories"] if s["id"] == STORY)
    assert [m["title"] for m in summit["matches"]] == [news.articles["on-summit-day"]["title"]]
    assert news.page_requests("on-revival") == 0

    # Again: nothing new anywhere, nothing compared again, nothing stored twice.
    assert main(["--config", str(config), "reader-sync", str(db)]) == 0
    out = capsys.readouterr().out
    assert "catch-up: 0 entries" in out and "0 new articles" in out
    assert news.page_requests("on-summit-day") == 1


def test_reader_sync_names_a_missing_database(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "reader-sync", str(tmp_path / "nope.sqlite")]) == 2
    assert f"no reader database at {tmp_path / 'nope.sqlite'}" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_text("not a database", encoding="utf-8")
    assert main(["--config", str(config), "reader-sync", str(tmp_path / "junk.sqlite")]) == 1
    err = capsys.readouterr().err
    assert "junk.sqlite: cannot be opened as a reader database" in err and "Traceback" not in err


def test_plugin_is_installed_once_and_known_only_where_installed(tmp_path: Path, config: Path) -> None:
    with make_reader(str(tmp_path / "plain.sqlite")) as plain:
        with pytest.raises(LookupError, match="not installed"):
            monitor_for(plain)
        plain.close()
    with pytest.raises(PluginInitError):
        make_reader(str(tmp_path / "twice.sqlite"), plugins=[plugin(config), plugin(config)])

    reader = make_reader(str(tmp_path / "once.sqlite"), plugins=[])
    plugin(config, start=False)(reader)
    assert len(reader.after_entry_update_hooks) == 1 and monitor_for(reader).pending() == 0
    close_monitor(reader)
    close_monitor(reader)                         # idempotent
    assert reader.after_entry_update_hooks == [] and reader.after_feed_update_hooks == []
    with pytest.raises(LookupError):
        monitor_for(reader)
    plugin(config, start=False)(reader)           # and it can be put back
    assert monitor_for(reader).pending() == 0
    close_monitor(reader)
    reader.close()
