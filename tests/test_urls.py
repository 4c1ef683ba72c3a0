from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.urls import absolute_http_url, canonicalize, is_http_url


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://WWW.Example.COM:80/News/Story/", "http://www.example.com/News/Story"),
    ("https://example.com:443/", "https://example.com/"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("https://example.com/a#comments", "https://example.com/a"),
    ("https://example.com/a?utm_source=rss&utm_medium=feed&id=7", "https://example.com/a?id=7"),
    ("https://example.com/a?fbclid=x&gclid=y&mc_cid=1&mc_eid=2&ocid=3&cmpid=4&ref=tw&ref_src=s&_ga=5&igshid=6",
     "https://example.com/a"),
    ("https://example.com/a?UTM_Campaign=x&page=2", "https://example.com/a?page=2"),
    ("https://example.com/a?z=1&a=2&m=3", "https://example.com/a?a=2&m=3&z=1"),
    ("https://example.com/a?tag=b&tag=a", "https://example.com/a?tag=b&tag=a"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("https://example.com/%7euser/%2fx", "https://example.com/~user/%2Fx"),
    ("https://example.com/caf\u00e9 menu", "https://example.com/caf%C3%A9%20menu"),
    ("https://example.com./a", "https://example.com/a"),
    ("https://[2001:DB8::1]:443/x/", "https://[2001:db8::1]/x"),
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://example.com/index.html", "https://example.com/index.html"),
])
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize("junk", ["", "   ", "not a url", "mailto:a@b.example", "http://[::1", "https://x:99999999/",
                                  "javascript:alert(1)", "ftp://example.com/a/"])
def test_canonicalize_returns_junk_stripped(junk: str) -> None:
    assert canonicalize(f" {junk} ") == junk.strip()


def test_tracking_variants_share_one_canonical_url() -> None:
    variants = [
        "https://news.example/2018/05/24/summit/",
        "https://NEWS.example/2018/05/24/summit?utm_source=twitter#top",
        "https://news.example:443/2018/05/24/summit?fbclid=abc",
    ]
    assert len({canonicalize(v) for v in variants}) == 1


def test_is_http_url() -> None:
    assert is_http_url("https://example.com/x")
    assert is_http_url("HTTP://example.com")
    assert not is_http_url("/relative/path")
    assert not is_http_url("file:///etc/passwd")
    assert not is_http_url("http://")
    assert not is_http_url("http://[::1")


@pytest.mark.parametrize(("href", "base", "expected"), [
    ("../b/c", "https://example.com/x/y/z", "https://example.com/x/b/c"),
    ("/a", "https://example.com/x/", "https://example.com/a"),
    ("//cdn.example/a", "https://example.com/", "https://cdn.example/a"),
    ("https://other.example/a", "https://example.com/", "https://other.example/a"),
    ("javascript:alert(1)", "https://example.com/", None),
    ("java\tscript:alert(1)", "https://example.com/", None),
    (" JAVASCRIPT:alert(1)", "https://example.com/", None),
    ("data:text/html,<script>x</script>", "https://example.com/", None),
    ("file:///etc/passwd", "https://example.com/", None),
    ("mailto:desk@example.com", "https://example.com/", None),
    ("relative", None, None),
    ("", "https://example.com/", None),
    (None, "https://example.com/", None),
    ("http://[::1", "https://example.com/", None),
])
def test_absolute_http_url(href: str | None, base: str | None, expected: str | None) -> None:
    assert absolute_http_url(href, base) == expected


_urlish = st.builds(
    lambda scheme, host, port, path, query, frag: f"{scheme}://{host}{port}{path}{query}{frag}",
    st.sampled_from(["http", "https", "HTTP", "hTTps"]),
    st.text(min_size=1, max_size=20),
    st.sampled_from(["", ":80", ":443", ":8080", ":", ":x"]),
    st.text(max_size=30).map(lambda s: "/" + s),
    st.text(max_size=30).map(lambda s: "?" + s),
    st.text(max_size=5).map(lambda s: "#" + s),
)


@settings(max_examples=500)
@given(st.one_of(st.text(), _urlish))
def test_canonicalize_never_raises_and_is_idempotent(url: str) -> None:
    once = canonicalize(url)
    assert isinstance(once, str)
    assert canonicalize(once) == once


@settings(max_examples=300)
@given(st.text(), st.one_of(st.none(), st.text(), _urlish))
def test_absolute_http_url_only_returns_http(href: str, base: str | None) -> None:
    result = absolute_http_url(href, base)
    assert result is None or is_http_url(result)


def test_a_host_that_normalises_to_nothing_is_not_a_link() -> None:
    """Found by the property tests: "http://./" canonicalised to the host-less "http:///"."""
    for url in ("http://./?q=1", "http:///?q=", "http://..//x", "http://\x08/0"):
        assert not is_http_url(url), url
        assert absolute_http_url(url, None) is None, url
    assert not is_http_url("http://a b/")
    assert is_http_url("http://a..b/") and is_http_url("http://[::1]/x")
