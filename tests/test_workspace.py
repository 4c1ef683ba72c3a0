"""The workspace pages of `monitor serve` over real HTTP, on a real SQLite database that holds the
demo stored by a real pass over the demo site: escaping, the Content-Security-Policy, filters,
search, the token that guards every write, and judging with its preview and apply."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import lxml.html
import pytest
from _apiserver import serving
from _workspace_demo import GONE_FEED, HOSTILE_TITLE, OFF_STORY_NEAR_MISS, settings_for, store_demo

from monitor.db import browse
from monitor.db import workspace as reads
from monitor.db.store import Store
from monitor.db.story_models import judgments
from monitor.demo.kept import STORY
from monitor.server import create_app
from monitor.service import MonitorService
from monitor.web.pages import CSP

TOKEN = "s3cret-token-for-tests"
STORY_PATH = f"/stories/{STORY}"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return store_demo(tmp_path_factory.mktemp("workspace"))


@pytest.fixture()
def fresh_db(demo_db: Path, tmp_path: Path) -> Path:
    """A copy of the demo database a test may change."""
    copy = tmp_path / "monitor.db"
    copy.write_bytes(demo_db.read_bytes())
    return copy


@pytest.fixture(scope="module")
def open_server(demo_db: Path) -> Iterator[str]:
    """No token configured: pages open, writes refused."""
    with MonitorService(settings_for(demo_db, token=None)) as svc, serving(create_app(svc)) as base:
        yield base


@pytest.fixture()
def guarded(fresh_db: Path) -> Iterator[tuple[str, Path]]:
    """A token configured, on a database the test may change: (base URL, database file)."""
    with MonitorService(settings_for(fresh_db, token=TOKEN)) as svc, serving(create_app(svc)) as base:
        yield base, fresh_db


def _tree(response: httpx.Response) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(response.text)


def _text(response: httpx.Response) -> str:
    return " ".join(_tree(response).text_content().split())


def _login(client: httpx.Client) -> None:
    answer = client.post("/login", data={"token": TOKEN, "next": "/stories"})
    assert answer.status_code == 303 and answer.headers["location"] == "/stories"


def _stored(db_file: Path) -> Store:
    return Store.open(f"sqlite:///{db_file}")


# -- reading ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/stories", STORY_PATH, f"{STORY_PATH}?tab=near-misses", "/feeds",
                                  "/articles?q=kim", f"{STORY_PATH}/changes", "/login"])
def test_every_page_is_html_under_a_strict_policy(open_server: str, path: str) -> None:
    answer = httpx.get(open_server + path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert "script-src" not in CSP and "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP
    tree = _tree(answer)
    assert not tree.xpath("//script"), "the workspace needs no script"
    # every asset it loads comes from this server
    for ref in tree.xpath("//link/@href | //img/@src"):
        assert ref.startswith("/"), ref
    css = httpx.get(open_server + tree.xpath("//link[@rel='stylesheet']/@href")[0])
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text


def test_the_stories_page_shows_counts_sparkline_and_health(open_server: str, demo_db: Path) -> None:
    answer = httpx.get(open_server + "/stories")
    row = _tree(answer).xpath("//table[contains(@class,'stories')]/tbody/tr")
    assert len(row) == 1
    cells = row[0].xpath("./td")
    with _stored(demo_db) as store:
        stored = sum(1 for _ in store.matches([STORY], None, None))
    assert cells[0].xpath(".//a/@href") == [STORY_PATH]
    assert cells[2].text_content().strip() == str(stored) and stored >= 10
    assert cells[1].text_content().strip() == str(stored)        # the pass ran today
    assert len(cells[3].xpath(".//*[local-name()='polyline']")) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", cells[4].text_content().strip())
    assert re.fullmatch(r"[0-9a-f]{16}", cells[5].text_content().strip())


def test_a_hostile_title_is_shown_as_text(open_server: str) -> None:
    answer = httpx.get(open_server + STORY_PATH)
    assert "<script>alert(1)" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert HOSTILE_TITLE in _text(answer)
    found = httpx.get(open_server + "/articles", params={"q": "alert(1)"})
    assert "<script>alert(1)" not in found.text and HOSTILE_TITLE in _text(found)
    assert "1 article containing" in _text(found)


def test_the_story_page_ranks_by_score_and_folds_copies(open_server: str) -> None:
    tree = _tree(httpx.get(open_server + STORY_PATH))
    assert tree.xpath("//figure/*[local-name()='svg']"), "the digest's timeline chart"
    scores = [float(s) for s in tree.xpath("//li[@class='item']/div[@class='head']/span[@class='score']/text()")]
    assert scores == sorted(scores, reverse=True) and len(scores) >= 5
    # the cancellation story: the wire text and its copies, one item, the copies folded under the first outlet
    folded = [d for d in tree.xpath("//details[@class='copies']") if "The Northern Wire" in d.text_content()]
    assert len(folded) == 1
    summary = " ".join(folded[0].xpath("./summary")[0].text_content().split())
    assert summary.startswith("First at The Northern Wire") and "3 more copies" in summary
    assert len(folded[0].xpath(".//li")) == 4
    item = folded[0].getparent()
    assert item.xpath(".//blockquote//mark"), "the passage with the evidence highlighted"
    assert item.xpath(".//ul[@class='why']/li")


def test_filters_narrow_the_matches(open_server: str) -> None:
    def titles(**params: str) -> list[str]:
        tree = _tree(httpx.get(open_server + STORY_PATH, params=params))
        return [" ".join(t.split()) for t in tree.xpath("//li[@class='item']/div[@class='head']/a/text()")]

    every = titles()
    french = titles(lang="fr")
    assert french == ["Trump annule le sommet de Singapour avec Kim Jong Un"]
    eastgate = _tree(httpx.get(open_server + STORY_PATH, params={"outlet": "Eastgate Times"}))
    outlets = [d.text_content().split(" · ")[0] for d in eastgate.xpath("//li[@class='item']/div[@class='muted']")]
    assert outlets and set(outlets) == {"Eastgate Times"} and len(outlets) < len(every)
    june = titles(since="2018-06-01", until="2018-06-30")
    assert june and set(june) < set(every)
    assert "Trump and Kim sign joint statement after historic Singapore summit" in titles(since="2018-06-12",
                                                                                         until="2018-06-12")
    high = titles(min_score="0.99")
    assert high and len(high) < len(every)
    page = _text(httpx.get(open_server + STORY_PATH, params={"since": "yesterday", "min_score": "7"}))
    assert "from 'yesterday' is not a date" in page and "minimum score '7' is not a number from 0 to 1" in page
    assert len(titles(since="yesterday")) == len(every)


def test_the_near_misses_say_why_they_fell_short(open_server: str) -> None:
    tree = _tree(httpx.get(open_server + STORY_PATH, params={"tab": "near-misses"}))
    items = tree.xpath("//li[@class='item']")
    assert [" ".join(i.xpath("./div[@class='head']/a")[0].text_content().split()) for i in items] == [OFF_STORY_NEAR_MISS]
    why = " ".join(items[0].xpath(".//p[@class='short']")[0].text_content().split())
    assert re.search(r"score 0\.\d{3} below the threshold 0\.\d\d", why)
    assert items[0].xpath(f".//form[@action='/stories/{STORY}/judge']//input[@name='label']/@value") == ["on"]
    current = tree.xpath("//nav[@class='tabs']/a[@aria-current='page']/text()")
    assert current == ["Near misses (1)"]


def test_the_feeds_page_shows_health_and_next_check(open_server: str) -> None:
    tree = _tree(httpx.get(open_server + "/feeds"))
    rows = tree.xpath("//table[contains(@class,'feeds')]/tbody/tr")
    assert len(rows) == 7
    health = {" ".join(r.xpath("./td")[0].text_content().split()): r.xpath("./td") for r in rows}
    [gone] = [cells for name, cells in health.items() if GONE_FEED in name]
    assert gone[1].xpath(".//span/text()") == ["error"] and "1 error in a row" in gone[1].text_content()
    assert "404" in gone[4].text_content()
    for cells in health.values():
        assert "UTC" in cells[2].text_content() and "UTC" in cells[3].text_content()
        assert cells[5].xpath(".//button/text()") == ["Disable"]
        if cells is not gone:
            assert cells[1].text_content().strip() == "ok" and not cells[4].text_content().strip()


def test_articles_are_searched_and_paged(open_server: str) -> None:
    every = _text(httpx.get(open_server + "/articles"))
    assert "25 articles." in every
    found = _tree(httpx.get(open_server + "/articles", params={"q": "HAWKER"}))
    titles = found.xpath("//li[@class='item']/div[@class='head']/a/text()")
    assert titles == ["Singapore to seek UNESCO status for its hawker culture"]
    none = _text(httpx.get(open_server + "/articles", params={"q": "100%_"}))
    assert "0 articles containing" in none


def test_an_unknown_story_is_a_page_saying_so(open_server: str) -> None:
    answer = httpx.get(open_server + "/stories/%3Cb%3Eno")
    assert answer.status_code == 404 and "<b>no" not in answer.text
    assert "There is no story '<b>no'" in _text(answer) and STORY in _text(answer)


# -- writing ------------------------------------------------------------------------------------------

def test_without_a_token_every_write_is_refused_saying_how_to_set_one(open_server: str, demo_db: Path) -> None:
    with _stored(demo_db) as store:
        [miss], _ = browse.near_misses(store, [STORY])
    for path, data in ((f"{STORY_PATH}/judge", {"url": miss.canonical_url, "label": "on"}),
                       (f"{STORY_PATH}/apply", {}), ("/feeds/enabled", {"url": "x", "enabled": "0"})):
        answer = httpx.post(open_server + path, data={**data, "token": "anything"})
        assert answer.status_code == 403, path
        assert "api_token" in answer.text and "MONITOR_API_TOKEN" in answer.text
    with _stored(demo_db) as store:
        assert judgments(store, STORY) == {}


def test_with_a_token_pages_and_writes_need_it(guarded: tuple[str, Path]) -> None:
    base, db_file = guarded
    with httpx.Client(base_url=base) as client:
        answer = client.get(STORY_PATH)
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={quote(STORY_PATH, safe='')}"
        wrong = client.post("/login", data={"token": "guess", "next": "/feeds"})
        assert wrong.status_code == 401 and "not the token" in _text(wrong)
        assert client.get("/feeds").status_code == 303
        with _stored(db_file) as store:
            url = store.list_feeds()[0].url
        refused = client.post("/feeds/enabled", data={"url": url, "enabled": "0"})
        assert refused.status_code == 401 and "log in" in _text(refused)
        bad = client.post("/feeds/enabled", data={"url": url, "enabled": "0", "token": "guess"})
        assert bad.status_code == 401
        crossed = client.post("/feeds/enabled", data={"url": url, "enabled": "0", "token": TOKEN},
                              headers={"Origin": "http://evil.example"})
        assert crossed.status_code == 403
        with _stored(db_file) as store:
            assert all(f.enabled for f in store.list_feeds())
        # the token in the form is enough
        done = client.post("/feeds/enabled", data={"url": url, "enabled": "0", "token": TOKEN})
        assert done.status_code == 303
        with _stored(db_file) as store:
            assert [f.enabled for f in store.list_feeds() if f.url == url] == [False]
        _login(client)
        page = _tree(client.get("/feeds"))
        assert not page.xpath("//input[@name='token']"), "logged in: the forms need no token field"
        assert page.xpath("//tr[contains(@class,'disabled')]//button/text()") == ["Enable"]
        assert client.post("/feeds/enabled", data={"url": url, "enabled": "1"}).status_code == 303
        with _stored(db_file) as store:
            assert all(f.enabled for f in store.list_feeds())
        assert client.post("/login", data={"token": TOKEN, "next": "https://evil.example/"}).headers["location"] == "/stories"


def test_marking_a_near_miss_right_previews_then_applies(guarded: tuple[str, Path]) -> None:
    base, db_file = guarded
    with _stored(db_file) as store:
        [miss], _ = browse.near_misses(store, [STORY])
        before = {m.canonical_url for m in store.matches([STORY], None, None)}
    with httpx.Client(base_url=base) as client:
        _login(client)
        judged = client.post(f"{STORY_PATH}/judge", data={"url": miss.canonical_url, "label": "on",
                                                          "note": "<b>belongs</b>"})
        assert judged.status_code == 303 and judged.headers["location"] == f"{STORY_PATH}/changes"
        with _stored(db_file) as store:
            assert judgments(store, STORY)[miss.canonical_url][:3] == ("on", "workspace", "<b>belongs</b>")
            assert {m.canonical_url for m in store.matches([STORY], None, None)} == before   # not applied yet
        preview = client.get(f"{STORY_PATH}/changes")
        added = _tree(preview).xpath("//section[h2[@id='added']]//li")
        assert len(added) == 1
        assert OFF_STORY_NEAR_MISS in added[0].text_content() and added[0].xpath("./div/text()") == [miss.url]
        assert "1 match to add" in _text(preview) and "0 to remove" in _text(preview)
        assert "<b>belongs</b>" not in preview.text and "&lt;b&gt;belongs&lt;/b&gt;" in preview.text
        applied = client.post(f"{STORY_PATH}/apply")
        assert applied.status_code == 303
        story = client.get(applied.headers["location"])
        assert "1 match added, 0 removed" in _text(story)
        titles = [" ".join(t.split()) for t in _tree(story).xpath("//li[@class='item']/div[@class='head']/a/text()")]
        assert OFF_STORY_NEAR_MISS in titles
    with _stored(db_file) as store:
        assert {m.canonical_url for m in store.matches([STORY], None, None)} == before | {miss.canonical_url}


def test_marking_a_match_wrong_removes_it_once_applied(guarded: tuple[str, Path]) -> None:
    base, db_file = guarded
    with httpx.Client(base_url=base) as client:
        _login(client)
        tree = _tree(client.get(STORY_PATH, params={"lang": "fr"}))
        [url] = tree.xpath("//form[contains(@class,'judge')]/input[@name='url']/@value")
        assert client.post(f"{STORY_PATH}/judge", data={"url": url, "label": "off"}).status_code == 303
        removed = _tree(client.get(f"{STORY_PATH}/changes")).xpath("//section[h2[@id='removed']]//li")
        assert len(removed) == 1 and "Trump annule le sommet" in removed[0].text_content()
        assert client.post(f"{STORY_PATH}/apply").status_code == 303
        assert _tree(client.get(STORY_PATH, params={"lang": "fr"})).xpath("//li[@class='item']") == []
        bogus = client.post(f"{STORY_PATH}/judge", data={"url": "https://nowhere.example/x", "label": "on"})
        assert bogus.status_code == 400


# -- the same reads on SQLite and PostgreSQL ----------------------------------------------------------

def test_the_workspace_reads_on_each_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from test_api import FOUND, _fill, _settings
    from test_api import STRIKE as API_STRIKE
    from test_api import SUMMIT as API_SUMMIT

    monkeypatch.delenv("MONITOR_API_TOKEN", raising=False)
    with MonitorService(_settings(db_url)) as svc, serving(create_app(svc)) as base:
        _fill(svc)
        activity = reads.story_activity(svc.store, [API_SUMMIT, API_STRIKE, "nothing"], FOUND - timedelta(days=1))
        assert {k: (a.total, a.new_since) for k, a in activity.items()} == {
            API_SUMMIT: (5, 5), API_STRIKE: (3, 3), "nothing": (0, 0)}
        assert reads.story_activity(svc.store, [API_SUMMIT], FOUND + timedelta(days=1))[API_SUMMIT].new_since == 0
        times = reads.filed_times(svc.store, [API_SUMMIT, API_STRIKE])
        assert len(times[API_SUMMIT]) == 5 and FOUND in times[API_STRIKE]      # the undated one: first seen
        hits, total = reads.search_articles(svc.store, "DOCKERS", limit=1, offset=0)
        assert total == 2 and len(hits) == 1 and hits[0].story_ids == (API_STRIKE,)
        assert reads.search_articles(svc.store, "100%", limit=5, offset=0)[1] == 0
        assert reads.search_articles(svc.store, "", limit=5, offset=0)[1] == 7
        assert reads.is_stored(svc.store, "https://port.example/strike-dated")
        assert not reads.is_stored(svc.store, "https://port.example/strike-dated?x=1&y=<2>")
        page = httpx.get(f"{base}/stories/{API_STRIKE}")
        assert page.status_code == 200 and "Harbour &lt;strike&gt;" in page.text and "<strike>" not in page.text
        assert "Dockers strike &lt;script&gt;alert(1)&lt;/script&gt;" in page.text



@pytest.mark.parametrize("tab, label, button", [("", "off", "Mark wrong"), ("?tab=near-misses", "on", "Mark right")])
def test_each_item_has_its_judge_form(guarded: tuple[str, Path], tab: str, label: str, button: str) -> None:
    base, _ = guarded
    with httpx.Client(base_url=base) as client:
        _login(client)
        tree = _tree(client.get(STORY_PATH + tab))
        forms = tree.xpath("//form[@class='judge']")
        assert forms and len(forms) == len(tree.xpath("//ol[@class='items']/li"))
        assert {f.xpath("string(.//button)") for f in forms} == {button}
        assert {f.xpath("string(.//input[@name='label']/@value)") for f in forms} == {label}
        assert all(f.xpath("string(@action)") == STORY_PATH + "/judge" for f in forms)
        assert all(f.xpath("string(.//input[@name='url']/@value)").startswith("http") for f in forms)
        assert not any(f.xpath(".//input[@name='token']") for f in forms)   # the session stands for it
