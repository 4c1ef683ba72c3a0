from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor._types import ParsedFeed
from monitor.exceptions import ParseError
from monitor.feeds import parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
RSS = {"content-type": "application/rss+xml"}
ATOM = {"content-type": "application/atom+xml; charset=utf-8"}


def _parse(name: str, url: str = "https://feeds.example/feed", headers: dict[str, str] = RSS) -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), url=url, headers=headers)


def test_rss2_channel() -> None:
    feed = _parse("rss2.xml")
    assert feed.title == "Harbour Times & Gazette"
    assert feed.link == "https://harbour-times.example/"
    assert feed.ttl_seconds == 30 * 60
    assert not feed.is_html and feed.problem is None
    assert len(feed.entries) == 4


def test_rss2_entries_are_plain_text_with_utc_dates() -> None:
    strike, wall, poll, tides = _parse("rss2.xml").entries
    assert strike.key == "harbour-times-40211"
    assert strike.link == "https://harbour-times.example/2018/06/12/ferry-strike-ends/?utm_source=rss&utm_medium=feed"
    assert strike.title == "Ferry strike ends after three days"
    assert strike.summary == ("Crews returned to work on Tuesday morning after the union accepted a revised offer. "
                              "Services resume at noon.")
    assert strike.author == "Mira Holt"
    # KST is UTC+9; feedparser alone reads an unknown zone name as UTC.
    assert strike.published == datetime(2018, 6, 12, 1, 0, tzinfo=UTC)
    assert wall.published == datetime(2018, 6, 11, 22, 30, tzinfo=UTC)   # EDT is UTC-4
    assert wall.key == "https://harbour-times.example/2018/06/11/sea-wall"   # no guid: the canonical link
    assert poll.link is None                                               # javascript: is never a link
    assert poll.published is None                                          # 1970: absurd
    assert tides.published is None                                         # 2100: in the future
    assert tides.link is None
    assert tides.key.startswith("sha1:") and tides.key != poll.key


def test_rss1_rdf_with_dc_dates() -> None:
    feed = _parse("rss1.rdf")
    assert feed.title == "The Valley Post"
    bridge, budget = feed.entries
    assert bridge.link == "https://valley-post.example/news/bridge-reopens"
    assert bridge.published == datetime(2018, 5, 24, 12, 5, tzinfo=UTC)
    assert bridge.author == "Jonas Berg"
    assert budget.published == datetime(2018, 5, 23, tzinfo=UTC)


def test_atom_relative_links_resolve_against_xml_base() -> None:
    feed = _parse("atom_relative.xml", url="https://northern-light.example/world/atom.xml", headers=ATOM)
    assert feed.title == "Northern Light"
    assert feed.link == "https://northern-light.example/"
    envoys, markets, full = feed.entries
    assert envoys.link == "https://northern-light.example/world/2018/06/envoys-meet"
    assert markets.link == "https://northern-light.example/business/markets-steady"
    assert envoys.summary == "Talks lasted five hours & ended with a statement."
    assert envoys.published == datetime(2018, 6, 12, 1, 15, tzinfo=UTC)
    assert markets.title == "Markets steady: <calm> returns"   # a text title keeps its angle brackets
    assert envoys.content_html is None
    assert full.content_html == "<p>The whole article travels in the feed.</p><p>Second paragraph.</p>"


def test_latin1_feed() -> None:
    (entry,) = _parse("latin1.xml").entries
    assert entry.title == "Fête du lac : record d'affluence à Genève"
    assert "présents" in entry.summary
    assert entry.published == datetime(2018, 7, 14, 19, 30, tzinfo=UTC)


def test_content_encoded_is_kept_sanitised() -> None:
    (entry,) = _parse("content_encoded.xml", url="https://eastbank.example/feed").entries
    assert entry.summary == "The central library will open on Sundays."
    assert entry.content_html is not None
    assert "open on Sundays from April" in entry.content_html
    assert 'href="https://eastbank.example/2018/02/library-staff"' in entry.content_html
    assert "<script" not in entry.content_html and "tracking" not in entry.content_html


@pytest.mark.parametrize("name", ["billion_laughs.xml", "xxe.xml"])
def test_entity_declarations_are_refused(name: str) -> None:
    with pytest.raises(ParseError, match="entities"):
        _parse(name)


def test_entity_declarations_are_refused_in_utf16() -> None:
    body = (FEEDS / "billion_laughs.xml").read_text().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>')
    with pytest.raises(ParseError, match="entities"):
        parse_feed(body.encode("utf-16"), url="https://feeds.example/x", headers=RSS)


def test_size_cap() -> None:
    body = (FEEDS / "rss2.xml").read_bytes()
    with pytest.raises(ParseError, match="larger"):
        parse_feed(body, url="https://feeds.example/x", headers=RSS, max_bytes=len(body) - 1)


def test_html_page_lists_its_feeds() -> None:
    page = _parse("site_home.html", url="https://www.harbour-times.example/", headers={"content-type": "text/html"})
    assert page.is_html
    assert page.entries == ()
    assert page.title == "Harbour Times – Home"
    # Resolved against <base href>, de-duplicated, javascript: and non-feed alternates dropped.
    assert page.alternates == ("https://harbour-times.example/rss/all.xml", "https://harbour-times.example/world/atom.xml")


def test_html_is_recognised_by_its_start_whatever_the_content_type() -> None:
    body = b"\n<!DOCTYPE html><html><head><link rel='alternate' type='application/atom+xml' href='/a.xml'></head></html>"
    page = parse_feed(body, url="https://site.example/news/", headers={"content-type": "application/xml"})
    assert page.is_html and page.alternates == ("https://site.example/a.xml",)


def test_empty_but_valid_feed() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title><link>https://q.example/</link></channel></rss>'
    feed = parse_feed(body, url="https://q.example/rss", headers=RSS)
    assert feed.title == "Quiet" and feed.entries == ()


def test_broken_feed_with_entries_reports_problem() -> None:
    body = (FEEDS / "rss2.xml").read_bytes()
    truncated = body[: body.index(b"<item>", body.index(b"</item>"))] + b"<item><title>cut"
    feed = parse_feed(truncated, url="https://feeds.example/x", headers=RSS)
    assert [e.title for e in feed.entries][:1] == ["Ferry strike ends after three days"]
    assert feed.problem


@pytest.mark.parametrize("body", [b"", b"\x00\x01\x02garbage", b"<notafeed/>", b"{\"json\": true}", b"<rss><channel><item>"])
def test_garbage_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, url="https://feeds.example/x", headers=RSS)
    assert "https://feeds.example/x" in str(caught.value)


def test_body_naming_a_local_file_is_not_opened() -> None:
    # feedparser opens a bytes argument as a path when it can; the body must only ever be data.
    with pytest.raises(ParseError):
        parse_feed(str(FEEDS / "rss2.xml").encode(), url="https://feeds.example/x", headers=RSS)


def test_overlong_guid_is_bounded() -> None:
    body = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>x</title>'
            f'<guid isPermaLink="false">{"g" * 5000}</guid></item></channel></rss>').encode()
    (entry,) = parse_feed(body, url="https://feeds.example/x", headers=RSS).entries
    assert entry.key.startswith("sha1:") and len(entry.key) < 100


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda head, tail: head + tail, st.sampled_from([
        b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>', b"<feed xmlns='http://www.w3.org/2005/Atom'>",
        b"<!DOCTYPE html><html>", b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"]),
        st.binary(max_size=500)),
))
def test_any_bytes_give_a_feed_or_parse_error(body: bytes) -> None:
    try:
        result = parse_feed(body, url="https://feeds.example/x", headers=RSS)
    except ParseError:
        return
    assert isinstance(result, ParsedFeed)
