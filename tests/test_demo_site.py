"""The bundled demo articles, the site rendered from them, and the local server that serves it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

import feedparser
import lxml.html
import pytest
import trafilatura
from sitegen import (
    ARTICLE_FIELDS,
    LocalSite,
    article_url,
    feed_url,
    load_articles,
    make_article,
    render_site,
    serve_articles,
)

BASE = "http://127.0.0.1:8765"
HOSTILE_TITLE = """<script>alert("pwned")</script> Kim & Trump's "deal" </title></item>]]>"""


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def _paragraphs(article: dict) -> list[str]:
    return article["body"].split("\n\n")


def _page_tree(out_dir: Path, article: dict) -> lxml.html.HtmlElement:
    path = out_dir / article["feed"] / article["path"].strip("/") / "index.html"
    return lxml.html.fromstring(path.read_bytes())


def test_bundled_articles_load_with_every_field() -> None:
    articles = load_articles()

    assert 20 <= len(articles) <= 30
    for article in articles:
        assert set(ARTICLE_FIELDS) <= set(article), article["id"]
        assert all(isinstance(article[name], str) for name in ARTICLE_FIELDS), article["id"]
        assert all(article[name] for name in ARTICLE_FIELDS if name != "dup_of"), article["id"]
        assert datetime.fromisoformat(article["published"]).year == 2018
        assert datetime.fromisoformat(article["published"]).tzinfo is not None
        assert article["path"].startswith("/")
        assert 150 <= len(article["body"].split()) <= 350, article["id"]
        assert len(_paragraphs(article)) >= 4, article["id"]
    assert len({a["id"] for a in articles}) == len(articles)
    assert len({(a["feed"], a["path"]) for a in articles}) == len(articles)
    moments = [datetime.fromisoformat(a["published"]) for a in articles]
    assert moments == sorted(moments)


def test_bundled_articles_have_the_promised_mix() -> None:
    articles = load_articles()
    by_id = {a["id"]: a for a in articles}

    copies = [a for a in articles if a["dup_of"]]
    assert len(copies) == 2
    assert len({a["dup_of"] for a in copies}) == 1
    original = by_id[copies[0]["dup_of"]]
    for copy in copies:
        assert copy["outlet"] != original["outlet"] and copy["title"] != original["title"]
        assert set(_paragraphs(copy)) < set(_paragraphs(original))   # lightly trimmed, otherwise the same words
    assert Counter(a["lang"] for a in articles)["en"] == len(articles) - 2
    assert {a["lang"] for a in articles} == {"en", "fr", "es"}
    assert len({a["feed"] for a in articles}) >= 4
    # Each outlet has one name, so a feed's title is well defined.
    assert all(len({a["outlet"] for a in articles if a["feed"] == feed}) == 1 for feed in {a["feed"] for a in articles})


def test_rendered_feeds_parse_and_list_every_article(tmp_path: Path) -> None:
    articles = load_articles()
    urls = render_site(articles, tmp_path, BASE)

    feeds = sorted({a["feed"] for a in articles})
    assert urls == [feed_url(BASE, feed) for feed in feeds]
    versions = set()
    for feed in feeds:
        parsed = feedparser.parse((tmp_path / feed / "feed.xml").read_bytes())
        assert not parsed.bozo, (feed, parsed.get("bozo_exception"))
        versions.add(parsed.version)
        expected = {article_url(BASE, a): a for a in articles if a["feed"] == feed}
        assert parsed.feed.title == next(iter(expected.values()))["outlet"]
        assert {entry.link for entry in parsed.entries} == set(expected)
        for entry in parsed.entries:
            article = expected[entry.link]
            assert entry.title == article["title"]
            assert entry.summary == article["summary"]
            assert entry.author == article["author"]
            assert entry.published_parsed[:6] == datetime.fromisoformat(article["published"]).utctimetuple()[:6]
            if "content" in entry:
                content = lxml.html.fromstring(entry.content[0].value)
                assert [p.text_content() for p in content.iter("p")] == _paragraphs(article)
    assert versions == {"rss20", "atom10"}
    assert any("content" in e for f in feeds for e in feedparser.parse((tmp_path / f / "feed.xml").read_bytes()).entries)


def test_pages_are_served_over_http_with_the_body_inside(tmp_path: Path) -> None:
    articles = load_articles()
    with serve_articles(tmp_path) as (site, urls):
        assert all(url.startswith(site.base_url + "/") for url in urls)
        status, content_type, body = _get(urls[0])
        assert status == 200
        assert feedparser.parse(body).entries

        for article in articles:
            status, content_type, body = _get(article_url(site.base_url, article))
            assert status == 200
            assert content_type.startswith("text/html")
            tree = lxml.html.fromstring(body)
            assert [p.text_content() for p in tree.xpath("//article//div[@class='story-body']/p")] == _paragraphs(article)
            assert tree.xpath("string(//link[@rel='canonical']/@href)") == article_url(site.base_url, article)
            assert tree.xpath("//nav") and tree.xpath("//aside[@class='most-read']//li/a") and tree.xpath("//footer")


def test_pages_give_the_extractor_the_body_without_the_furniture(tmp_path: Path) -> None:
    articles = load_articles()
    render_site(articles, tmp_path, BASE)
    for article in articles:
        html_text = (tmp_path / article["feed"] / article["path"].strip("/") / "index.html").read_text(encoding="utf-8")
        extracted = trafilatura.extract(html_text, favor_precision=True)
        assert extracted is not None, article["id"]
        assert all(p in extracted for p in _paragraphs(article)), article["id"]
        assert "Most read" not in extracted and "morning briefing" not in extracted, article["id"]


def test_hostile_text_is_escaped_in_every_feed_format_and_page(tmp_path: Path) -> None:
    hostile = [
        make_article(f"evil-{fmt}", feed=f"evil-{fmt}", title=HOSTILE_TITLE, author='Ann "<b>" & Co',
                     summary="Less < more & ]]> done", body="<p>para one</p>\n\n</div><script>x()</script> & more")
        for fmt in ("rss2", "atom", "rss2-full")
    ]
    formats = {"evil-rss2": "rss2", "evil-atom": "atom", "evil-rss2-full": "rss2-full"}
    render_site(hostile, tmp_path, BASE, feed_formats=formats)

    for article in hostile:
        raw_feed = (tmp_path / article["feed"] / "feed.xml").read_bytes()
        assert b"<script>" not in raw_feed
        parsed = feedparser.parse(raw_feed)
        assert not parsed.bozo, parsed.get("bozo_exception")
        (entry,) = parsed.entries
        assert entry.title == HOSTILE_TITLE
        assert entry.link == article_url(BASE, article)
        if formats[article["feed"]] == "rss2-full":
            assert "&lt;script&gt;x()&lt;/script&gt;" in entry.content[0].value

        raw_page = (tmp_path / article["feed"] / article["path"].strip("/") / "index.html").read_bytes()
        assert b"<script>" not in raw_page and b"</title></item>" not in raw_page
        tree = _page_tree(tmp_path, article)
        assert tree.xpath("string(//h1)") == HOSTILE_TITLE
        assert tree.xpath("string(//title)") == f"{HOSTILE_TITLE} | Test Gazette"
        assert tree.xpath("string(//meta[@property='og:title']/@content)") == HOSTILE_TITLE
        (script,) = tree.xpath("//script")
        assert script.get("type") == "application/ld+json"
        assert "<" not in script.text   # nothing in the JSON can close the element early
        assert json.loads(script.text)["headline"] == HOSTILE_TITLE
        assert [p.text_content() for p in tree.xpath("//div[@class='story-body']/p")] == _paragraphs(article)


def test_characters_xml_forbids_do_not_break_the_feed(tmp_path: Path) -> None:
    render_site([make_article("ctl", title="Bell\x07 and escape\x1b")], tmp_path, BASE, feed_formats={"test-gazette": "atom"})

    parsed = feedparser.parse((tmp_path / "test-gazette" / "feed.xml").read_bytes())
    assert not parsed.bozo
    assert parsed.entries[0].title == "Bell and escape"


@pytest.mark.parametrize("field, value", [
    ("path", "/../../escaped"),
    ("path", "/2018/./x"),
    ("path", "no-leading-slash"),
    ("path", "/a//b"),
    ("feed", "../outside"),
    ("feed", "Upper"),
])
def test_locations_that_could_leave_the_output_folder_are_refused(tmp_path: Path, field: str, value: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="evil"):
        render_site([make_article("evil", **{field: value})], out, BASE)
    assert not any(tmp_path.rglob("index.html"))


def test_a_base_url_that_would_need_escaping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base URL"):
        render_site([make_article("a")], tmp_path, 'http://127.0.0.1:1/"><script>')


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    articles = load_articles()
    render_site(articles, tmp_path / "one", BASE)
    render_site(list(reversed(articles)), tmp_path / "two", BASE)

    def snapshot(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    one = snapshot(tmp_path / "one")
    assert len(one) == len(articles) + 2 * len({a["feed"] for a in articles})
    assert one == snapshot(tmp_path / "two")


def test_load_articles_names_the_line_of_a_bad_row(tmp_path: Path) -> None:
    source = tmp_path / "articles.jsonl"
    good = make_article("good")
    bad = {k: v for k, v in make_article("bad").items() if k != "body"}
    source.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"articles.jsonl:3: article 'bad' lacks text fields \['body'\]"):
        load_articles(source)
    source.write_text(json.dumps(good) + "\n", encoding="utf-8")
    assert load_articles(source) == [good]


def test_local_site_serves_quietly_and_stops_on_close(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello")
    site = LocalSite(tmp_path)
    assert site.base_url.startswith("http://127.0.0.1:")
    with site:
        assert _get(site.base_url + "/hello.txt")[2] == b"hello"
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(site.base_url + "/nothing-here")
        assert missing.value.code == 404
    assert capfd.readouterr().err == ""
    with pytest.raises(urllib.error.URLError):
        _get(site.base_url + "/hello.txt")
    site.close()   # closing twice is harmless


def test_the_port_is_bound_before_the_site_is_rendered(tmp_path: Path) -> None:
    site = LocalSite(tmp_path)
    try:
        render_site([make_article("early")], tmp_path, site.base_url)
        site.start()
        status, _, body = _get(article_url(site.base_url, make_article("early")))
        assert status == 200 and b"The first paragraph of article early." in body
    finally:
        site.close()
