from __future__ import annotations

import json
import pickle
import re
import statistics
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor._types import ExtractedPage
from monitor.extract import _article_focus, decode_html, extract_page, guess_language, html_to_text

PAGES = Path(__file__).parent / "data" / "pages"
SHARED_CORPUS = Path("/work/shared/corpus")
ARTICLE_URL = "https://harbour-times.example/2018/06/12/ferry-strike-ends/?utm_source=rss"


def _article() -> ExtractedPage:
    return extract_page((PAGES / "article.html").read_bytes(), url=ARTICLE_URL)


def test_body_is_the_article_in_paragraphs() -> None:
    paragraphs = _article().body.split("\n\n")
    assert len(paragraphs) == 5
    assert paragraphs[0].startswith("Ferry crews returned to work on Tuesday morning")
    assert paragraphs[2].startswith('"Nobody wanted this to drag on,"')
    assert paragraphs[4].endswith("far fewer customers than usual for the time of year.")


@pytest.mark.parametrize("furniture", ["cookies", "Most read", "Lighthouse keeper", "morning briefing", "sailor77",
                                       "Three days of chaos", "About us", "Advertisement", "dataLayer", "Politics"])
def test_body_leaves_site_furniture_out(furniture: str) -> None:
    assert furniture not in _article().body


def test_metadata() -> None:
    page = _article()
    assert page.title == "Ferry strike ends after three days"
    assert page.author == "Mira Holt"
    assert page.published == datetime(2018, 6, 12, 1, 0, tzinfo=UTC)
    assert page.site_name == "Harbour Times"
    assert page.lang == "en"
    assert page.canonical_url == "https://harbour-times.example/2018/06/12/ferry-strike-ends"
    assert page.description == "Crews returned to work after the union accepted a revised pay offer."


def test_windows_1252_page_without_lang() -> None:
    page = extract_page((PAGES / "cp1252_no_lang.html").read_bytes(), url="https://seeblick.example/lokales/promenade")
    assert page.title == "Stadtrat beschließt neue Uferpromenade"
    assert "Außerdem sind neue Bänke, Bäume" in page.body
    assert page.body.count("\n\n") == 3
    assert "Impressum" not in page.body and "Startseite" not in page.body
    assert page.lang == "de"                       # guessed from the text: the page does not say
    assert page.canonical_url is None              # javascript: is not a canonical URL
    assert page.published == datetime(2018, 4, 19, 15, 45, tzinfo=UTC)


def test_http_charset_wins_over_a_wrong_meta() -> None:
    html = (PAGES / "article.html").read_text(encoding="utf-8").replace("cafés", "caf\u00e9s \u00fcber")
    # The page says utf-8 in a <meta>, the server (rightly) says Latin-1.
    page = extract_page(html.encode("iso-8859-1"), url=ARTICLE_URL, encoding="iso-8859-1")
    assert "cafés über" in page.body


def test_input_is_truncated_to_max_bytes() -> None:
    raw = (PAGES / "article.html").read_bytes()
    cut = raw.index(b"City officials had warned")
    page = extract_page(raw, url=ARTICLE_URL, max_bytes=cut)
    assert "Ferry crews returned" in page.body
    assert "City officials" not in page.body


@pytest.mark.parametrize("html", [b"", b"   ", b"\x00\xff\xfe garbage", b"<html></html>", b"<p>tiny</p>",
                                  b"<" * 10000, b"<div>" * 50000 + b"deep" + b"</div>" * 50000,
                                  b"\xef\xbb\xbf<html><body><p>bom</p></body></html>",
                                  b'<?xml version="1.0" encoding="utf-8"?><html><body><p>x</p></body></html>'])
def test_hostile_input_never_raises(html: bytes) -> None:
    page = extract_page(html, url="https://x.example/")
    assert isinstance(page, ExtractedPage) and isinstance(page.body, str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_any_bytes_give_a_page(html: bytes) -> None:
    assert isinstance(extract_page(html, url="https://x.example/"), ExtractedPage)


def test_runs_in_a_process_pool() -> None:
    assert pickle.loads(pickle.dumps(extract_page)) is extract_page
    raw = (PAGES / "article.html").read_bytes()
    with ProcessPoolExecutor(max_workers=1) as pool:
        page = pool.submit(extract_page, raw, url=ARTICLE_URL).result(timeout=60)
    assert page == _article()


def test_html_to_text() -> None:
    fragment = ('<p>The central library will open\n   on <b>Sundays</b>.</p><p>Staff will be paid overtime.<br>'
                'From April.</p>Loose text<br><br>after a double break<script>alert(1)</script>'
                '<ul><li>one</li><li>two &amp; three</li></ul>')
    assert html_to_text(fragment) == ("The central library will open on Sundays.\n\n"
                                      "Staff will be paid overtime.\nFrom April.\n\n"
                                      "Loose text\n\nafter a double break\n\none\n\ntwo & three")


@pytest.mark.parametrize("fragment", ["", "   ", "<", "&", "</p></div>", "\x00", "\ud800"])
def test_html_to_text_never_raises(fragment: str) -> None:
    assert isinstance(html_to_text(fragment), str)


_TOKEN = re.compile(r"\w+")


def _shingle_f1(truth: str, found: str) -> float:
    def shingles(text: str) -> Counter:
        tokens = _TOKEN.findall(text)
        return Counter(tuple(tokens[i:i + 4]) for i in range(max(1, len(tokens) - 3)))
    t, f = shingles(truth), shingles(found)
    common = sum((t & f).values())
    return 2 * common / (sum(t.values()) + sum(f.values())) if common else 0.0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_CORPUS / "build_site.py").exists(), reason="the shared dev corpus is not available")
def test_corpus_pages_extract_to_their_bodies(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SHARED_CORPUS / "build_site.py"), str(SHARED_CORPUS / "dev.jsonl"),
                    str(tmp_path), "--base", "http://127.0.0.1:8123"], check=True)
    bodies = {}
    for line in (SHARED_CORPUS / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            bodies[row["id"]] = row["body"]
    scores = []
    for line in (tmp_path / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        page = extract_page((tmp_path / "site" / row["path"].strip("/") / "index.html").read_bytes(), url=row["url"])
        scores.append(_shingle_f1(bodies[row["id"]], page.body))
    assert statistics.median(scores) >= 0.97
    assert min(scores) >= 0.9


@pytest.mark.parametrize(("text", "lang"), [
    ("Pemerintah kota akan membuka perpustakaan pusat pada hari Minggu mulai bulan depan, kata wali kota.", "id"),
    ("Городская библиотека будет открыта по воскресеньям, сообщили в администрации города.", "ru"),
    ("La biblioteca central abrirá los domingos a partir del mes que viene, según el ayuntamiento.", "es"),
])
def test_guess_language(text: str, lang: str) -> None:
    assert guess_language(text) == lang


@pytest.mark.parametrize("text", ["", "   ", "OK", "12:30"])
def test_guess_language_is_none_without_enough_text(text: str) -> None:
    assert guess_language(text) is None


def test_undeclared_legacy_page_decodes_as_windows_1252() -> None:
    text = "<p>\u201cCaf\u00e9s\u201d \u2013 \u00a330</p>"
    assert decode_html(text.encode("cp1252"), None) == text
    assert decode_html(text.encode("utf-8"), None) == text
    russian = "<p>Городская библиотека</p>"
    assert decode_html(russian.encode("cp1251"), "windows-1251") == russian   # a declaration wins


_PROSE = ("The harbour council approved the new ferry timetable on Tuesday after a debate that lasted "
          "well into the evening, with members of both groups asking for more night crossings. ")


def _page(article: str, outside: str = "") -> bytes:
    return (f'<html lang="en"><head><title>Council backs new ferry timetable</title>'
            f'<meta property="og:title" content="Council backs new ferry timetable"></head><body>'
            f'<nav><a href="/">Home</a> <a href="/news">News</a></nav>{outside}{article}'
            f'<footer><a href="/about">About us</a></footer></body></html>').encode()


def test_headline_links_urls_and_copyright_are_not_the_body() -> None:
    article = ("<div><h1>Council backs new ferry timetable</h1>"
               + "".join(f"<p>{i}. {_PROSE * 2}</p>" for i in range(4))
               + '<p>Read more: <a href="/x">Storm closes the northern ferry route for two days</a></p>'
               + '<ul><li><a href="/y">Lighthouse keeper retires after forty years</a></li>'
               + '<li><a href="/z">New cafe opens at the ferry terminal in spring</a></li></ul>'
               + "<p>https://harbour-times.example/2018/06/12/timetable</p>"
               + "<p>\u00a9 2018 Harbour Times. All rights reserved.</p></div>")
    body = extract_page(_page(article), url="https://harbour-times.example/2018/06/12/timetable").body
    blocks = body.split("\n\n")
    assert blocks[0].startswith("0. The harbour council") and len(blocks) == 4
    for furniture in ("Council backs", "Storm closes", "Lighthouse keeper", "New cafe", "https://", "All rights reserved"):
        assert furniture not in body


def test_a_page_whose_paragraphs_are_all_in_boilerplate_elements_keeps_them() -> None:
    # trafilatura, in recall mode, keeps the elements it cleans away (aside, footer, ...) when no
    # paragraph is left without them; dropping them before it (to spare it their cleaning) must not
    # take that text away.
    text = "<aside>" + "".join(f"<p>{i}. {_PROSE}</p>" for i in range(3)) + "</aside>"
    body = extract_page(_page(text), url="https://harbour-times.example/a").body
    assert "0. The harbour council" in body and "2. The harbour council" in body


def test_a_link_inside_a_paragraph_stays() -> None:
    article = "".join(f'<p>{i}. {_PROSE}See <a href="/t{i}">the timetable of route {i}</a>. {_PROSE}</p>' for i in range(3))
    body = extract_page(_page(f"<div>{article}</div>"), url="https://harbour-times.example/a").body
    assert all(f"See the timetable of route {i}." in body for i in range(3))


def test_the_one_marked_article_is_extracted_alone() -> None:
    article = "<article>" + "".join(f"<p>{i}. {_PROSE * 2}</p>" for i in range(5)) + "</article>"
    teaser = "<div><p>Sponsored: the island cruise season opens with free tickets for every reader who signs up today.</p></div>"
    body = extract_page(_page(article, outside=teaser), url="https://harbour-times.example/a").body
    assert body.startswith("0. The harbour council") and "Sponsored" not in body
    # An <article> holding a small part of the page's text (a teaser) does not narrow the extraction.
    small = "<article><p>Also today: the lighthouse keeper retires after forty years on the island.</p></article>"
    body = extract_page(_page(small, outside="<div>" + "".join(f"<p>{i}. {_PROSE * 2}</p>" for i in range(5)) + "</div>"),
                        url="https://harbour-times.example/a").body
    assert "0. The harbour council" in body


def test_of_several_marked_articles_the_one_with_most_of_the_text_is_extracted_alone() -> None:
    article = "<article>" + "".join(f"<p>{i}. {_PROSE * 2}</p>" for i in range(5)) + "</article>"
    sponsored = "<div><p>Sponsored: the island cruise season opens with free tickets for every reader who signs up today.</p></div>"
    related = "".join(f"<article><p>Related: the lighthouse keeper of island {i} retires after forty years.</p></article>"
                      for i in range(3))
    body = extract_page(_page(article, outside=sponsored + related), url="https://harbour-times.example/a").body
    assert body.startswith("0. The harbour council") and "Sponsored" not in body and "Related" not in body


def test_a_marked_element_holding_other_marked_ones_is_not_the_article() -> None:
    # A list of stories each marked up as an <article>, inside one more <article>: the list holds most
    # of the paragraph text, yet it is not the article; the whole page is left to trafilatura.
    own = "<div>" + "".join(f"<p>{i}. {_PROSE}</p>" for i in range(2)) + "</div>"
    teasers = "".join(f"<article><p>Teaser {i}: {_PROSE * 2}</p></article>" for i in range(3))
    tree = lxml.html.document_fromstring(_page(own, outside=f"<article>{teasers}</article>"))
    assert _article_focus(tree) is tree
    # The same page with its own text marked up as an <article> too: that one is taken.
    tree = lxml.html.document_fromstring(_page(f"<article>{own * 4}</article>", outside=f"<article>{teasers}</article>"))
    focus = _article_focus(tree)
    assert focus is not tree and "0. The harbour council" in focus.text_content() and "Teaser" not in focus.text_content()
