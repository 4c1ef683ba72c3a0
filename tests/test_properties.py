"""Property-based tests (hypothesis) of the paths hostile input takes.

- any bytes through `parse_feed` give a ParsedFeed or a ParseError, never anything else, and
  what comes out is safe to use (http(s) links only, bounded keys, plain-text titles);
- any URL through `canonicalize` / `absolute_http_url` never raises, and canonical forms are
  fixed points;
- any generated RSS or Atom document, served by a real local server, goes through a whole
  pipeline pass without an exception escaping it or being logged as unexpected.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import pytest
from _httpserver import LocalServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.exceptions import ParseError
from monitor.feeds import parse_feed
from monitor.urls import absolute_http_url, canonicalize, is_http_url

BASE = "http://news.example/world/feed.xml"

# --- URLs ------------------------------------------------------------------------------------

_hosts = st.one_of(
    st.sampled_from(["news.example", "NEWS.Example.", "xn--bcher-kva.example", "bücher.example", "例え.テスト",
                     "127.0.0.1", "[::1]", "[2001:db8::1]", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1",
                     "a..b", "-x-.example", "_under.example", "", " ", "%41.example", "user@host.example"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
)
_ports = st.sampled_from(["", ":80", ":443", ":8080", ":0", ":65535", ":65536", ":-1", ":x", ":"])
_segments = st.lists(st.one_of(st.sampled_from(["", ".", "..", "%2F", "%2e%2E", "a%20b", "%zz", "%", "é", "~x"]),
                               st.text(max_size=8)), max_size=5)
_params = st.lists(st.tuples(st.sampled_from(["utm_source", "UTM_Medium", "utm%5Fcampaign", "fbclid", "id", "q",
                                              "ref", "page", "", "a b", "é"]),
                             st.text(max_size=6)), max_size=4)
_urls = st.builds(
    lambda scheme, userinfo, host, port, path, params, fragment: (
        f"{scheme}{userinfo}{host}{port}/{'/'.join(path)}"
        + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "") + fragment),
    st.sampled_from(["http://", "https://", "HTTP://", "hTTps://", "ftp://", "javascript:", "//", "", "http:/",
                     "file:///", "data:text/html,"]),
    st.sampled_from(["", "user@", "user:pw@", "@", ":@"]),
    _hosts, _ports, _segments, _params, st.sampled_from(["", "#", "#frag", "#a?b"]))
_any_url = st.one_of(_urls, st.text(max_size=60))


@given(_any_url)
@settings(max_examples=400)
def test_canonicalize_never_raises_and_canonical_forms_are_fixed_points(url: str) -> None:
    once = canonicalize(url)
    assert isinstance(once, str)
    assert canonicalize(once) == once


@given(_any_url, st.one_of(st.none(), st.just(BASE), _urls))
@settings(max_examples=400)
def test_resolved_links_are_http_and_stay_http_once_canonical(href: str, base: str | None) -> None:
    resolved = absolute_http_url(href, base)
    if resolved is None:
        return
    assert is_http_url(resolved)
    canonical = canonicalize(resolved)
    assert is_http_url(canonical) and canonicalize(canonical) == canonical


@given(_urls)
@settings(max_examples=300)
def test_canonical_urls_carry_no_tracking_parameters(url: str) -> None:
    canonical = canonicalize(url)
    if not is_http_url(canonical) or canonical == url.strip():
        return      # not an http(s) URL: returned as given
    names = [name.lower() for name, _ in parse_qsl(urlsplit(canonical).query, keep_blank_values=True)]
    assert not any(n.startswith("utm_") or n == "fbclid" for n in names)
    assert "#" not in canonical


# --- feed documents --------------------------------------------------------------------------

_xmlish = st.builds(
    lambda parts: b"".join(parts),
    st.lists(st.one_of(
        st.sampled_from([b"<?xml version='1.0' encoding='utf-8'?>", b"<?xml version='1.0' encoding='utf-16'?>",
                         b"<rss version='2.0'>", b"<channel>", b"</channel>", b"</rss>", b"<item>", b"</item>",
                         b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"</feed>", b"<entry>", b"</entry>",
                         b"<title>", b"</title>", b"<link>", b"</link>", b"<link href='javascript:x'/>",
                         b"<guid>", b"</guid>", b"<description>", b"</description>", b"<![CDATA[", b"]]>",
                         b"&amp;", b"&lt;", b"&#0;", b"&#xD800;", b"&nbsp;", b"&unknown;", b"<!DOCTYPE rss>",
                         b"<!ENTITY x 'y'>", b"<!-- c -->", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"http://a.example/x",
                         b"<ttl>", b"</ttl>", b"99999999999", b"<script>alert(1)</script>", b"<pubDate>",
                         b"Tue, 12 Jun 2018 10:00:00 KST", b"</pubDate>", b"<html>", b"<link rel='alternate' "
                         b"type='application/rss+xml' href='/f'>"]),
        st.binary(max_size=20),
        st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ), max_size=40))


@given(st.one_of(st.binary(max_size=3000), _xmlish), st.sampled_from(["", "application/rss+xml", "text/html",
                                                                      "text/xml; charset=iso-8859-1"]))
@settings(max_examples=400, deadline=None)
def test_any_bytes_give_a_safe_feed_or_a_parse_error(body: bytes, content_type: str) -> None:
    try:
        parsed = parse_feed(body, url=BASE, headers={"content-type": content_type} if content_type else {})
    except ParseError as e:
        assert str(e).startswith(BASE)
        return
    for entry in parsed.entries:
        assert entry.link is None or is_http_url(entry.link)
        assert entry.key and len(entry.key) <= 512
        assert "<" not in entry.title or ">" not in entry.title.split("<", 1)[1]   # no markup left in titles
    assert all(is_http_url(url) for url in parsed.alternates)
    assert parsed.ttl_seconds is None or 0 < parsed.ttl_seconds <= 365 * 86400


# --- whole passes over generated feeds --------------------------------------------------------

_texts = st.text(max_size=40)
_links = st.one_of(st.none(), _any_url, st.sampled_from(["/p/ok", "/p/missing", "p/relative", "/p/ok#frag",
                                                         "/p/ok?utm_source=x"]))
_entries = st.lists(st.fixed_dictionaries({"title": _texts, "link": _links, "id": st.one_of(st.none(), _texts),
                                           "summary": _texts, "content": st.one_of(st.none(), _texts)}), max_size=6)


def _xml_text(text: str) -> str:
    # Escaped, but not cleaned: characters XML forbids stay in, making some documents malformed.
    return escape(text)


def render(kind: str, entries: list[dict[str, Any]]) -> bytes:
    if kind == "atom":
        items = "".join(
            "<entry>" + f"<title>{_xml_text(e['title'])}</title>"
            + (f"<link href=\"{_xml_text(e['link'])}\"/>" if e["link"] is not None else "")
            + (f"<id>{_xml_text(e['id'])}</id>" if e["id"] is not None else "")
            + f"<summary>{_xml_text(e['summary'])}</summary>"
            + (f"<content type='html'>{_xml_text(e['content'])}</content>" if e["content"] is not None else "")
            + "</entry>" for e in entries)
        doc = f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>{items}</feed>"
    else:
        items = "".join(
            "<item>" + f"<title>{_xml_text(e['title'])}</title>"
            + (f"<link>{_xml_text(e['link'])}</link>" if e["link"] is not None else "")
            + (f"<guid>{_xml_text(e['id'])}</guid>" if e["id"] is not None else "")
            + f"<description>{_xml_text(e['summary'])}</description>"
            + (f"<content:encoded>{_xml_text(e['content'])}</content:encoded>" if e["content"] is not None else "")
            + "</item>" for e in entries)
        doc = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0' "
               "xmlns:content='http://purl.org/rss/1.0/modules/content/'><channel><title>t</title>"
               f"{items}</channel></rss>")
    return doc.encode("utf-8", "surrogatepass")


class _Errors(logging.Handler):
    """Collects what the pipeline logs as unexpected (its last line of defence)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def pipeline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, LocalServer, _Errors]]:
    from monitor.config import settings_from_dict
    from monitor.db.store import Store
    from monitor.matching import Matcher
    from monitor.pipeline import Pipeline

    db = Path(tmp_path_factory.mktemp("properties")) / "monitor.db"
    settings = settings_from_dict({
        "database": {"url": f"sqlite:///{db}"},
        "fetch": {"allow_private_addresses": True, "total_timeout": 2, "read_timeout": 1, "page_retries": 1},
        "extract": {"workers": 1}})
    errors = _Errors()
    logging.getLogger("monitor").addHandler(errors)
    with LocalServer({"/p/ok": (200, {"Content-Type": "text/html"},
                                b"<html><body><article><p>" + b"An ordinary article paragraph. " * 30
                                + b"</p></article></body></html>")}) as server, \
            Store.open(settings.database_url, create=True) as store, \
            Pipeline(settings, store, Matcher([])) as pipeline:
        yield pipeline, store, server, errors
    logging.getLogger("monitor").removeHandler(errors)


_feed_numbers = itertools.count()


@given(st.sampled_from(["rss", "atom"]), _entries)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
def test_a_pass_over_any_generated_feed_never_raises(pipeline_env: Any, kind: str, entries: list[dict[str, Any]]) -> None:
    pipeline, store, server, errors = pipeline_env
    path = f"/feed/{next(_feed_numbers)}.xml"
    server.routes[path] = (200, {"Content-Type": "application/rss+xml"}, render(kind, entries))
    feed = store.add_feed(server.url(path))
    before = len(errors.records)
    summary = pipeline.run_pass([feed])
    assert errors.records[before:] == [], [r.getMessage() for r in errors.records[before:]]
    assert summary.feeds == 1 and summary.feeds_ok + summary.feeds_failed == 1
    after = store.get_feed(server.url(path))
    assert after is not None and after.last_status in ("ok", "error")
    # whatever was stored came from an http(s) link of this feed
    for article in store.iter_articles():
        assert is_http_url(article.url)
