import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import brotli
import httpx
import pytest
from _httpserver import LocalServer, delayed, never_answer, slow_body

from monitor import USER_AGENT
from monitor.exceptions import (
    BlockedAddressError,
    DeadlineError,
    FetchError,
    HTTPStatusError,
    TooLargeError,
    TooManyRedirectsError,
    UnsupportedURLError,
)
from monitor.fetch import Fetcher, FetchPolicy, cache_max_age

PAGE = b"<html><body><p>" + b"Summit talks resume in Singapore. " * 200 + b"</p></body></html>"
LOCAL = FetchPolicy(allow_private_addresses=True, connect_timeout=2, read_timeout=2, total_timeout=5)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(LOCAL) as f:
        yield f


def redirect(status: int, location: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Location": location}, b""


# --- bodies ----------------------------------------------------------------------------------

def test_plain_200(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/page"] = (200, {"Content-Type": "text/html; charset=utf-8", "ETag": '"v1"',
                                    "Last-Modified": "Thu, 24 May 2018 14:00:00 GMT"}, PAGE)
    result = fetcher.fetch(server.url("/page"))
    assert (result.status, result.body, result.final_url) == (200, PAGE, server.url("/page"))
    assert result.content_type == "text/html"
    assert result.headers["etag"] == '"v1"' and result.etag == '"v1"'
    assert result.last_modified == "Thu, 24 May 2018 14:00:00 GMT"
    assert result.permanent_redirect is None and not result.not_modified
    sent = server.requests[0].headers
    assert sent["user-agent"] == USER_AGENT
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert "text/html" in sent["accept"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_accept_and_user_agent_are_configurable(server: LocalServer) -> None:
    server.routes["/feed"] = (200, {}, b"<rss/>")
    with Fetcher(FetchPolicy(allow_private_addresses=True, user_agent="probe/1")) as fetcher:
        fetcher.fetch(server.url("/feed"), accept="application/rss+xml")
    assert server.requests[0].headers["accept"] == "application/rss+xml"
    assert server.requests[0].headers["user-agent"] == "probe/1"


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),      # zlib-wrapped, as the RFC says
    ("deflate", _raw_deflate),       # raw, as some servers send it
    ("br", brotli.compress),
    ("identity", lambda data: data),
])
def test_compressed_bodies_are_decoded(server: LocalServer, fetcher: Fetcher, encoding, encode) -> None:
    server.routes["/c"] = (200, {"Content-Encoding": encoding}, encode(PAGE))
    assert fetcher.fetch(server.url("/c")).body == PAGE


@pytest.mark.parametrize("encoding, encode", [("gzip", gzip.compress), ("br", brotli.compress),
                                              ("deflate", zlib.compress)])
def test_compression_bomb_stops_at_the_cap(server: LocalServer, fetcher: Fetcher, encoding, encode) -> None:
    cap = 1024 * 1024
    bomb = encode(b"\0" * (10 * cap))
    assert len(bomb) < 20_000
    server.routes["/bomb"] = (200, {"Content-Encoding": encoding}, bomb)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match="decoded body exceeds"):
            fetcher.fetch(server.url("/bomb"), max_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * cap


def test_body_at_the_cap_is_accepted(server: LocalServer, fetcher: Fetcher) -> None:
    body = b"a" * 5000
    server.routes["/gz"] = (200, {"Content-Encoding": "gzip"}, gzip.compress(body))
    assert fetcher.fetch(server.url("/gz"), max_bytes=5000).body == body
    with pytest.raises(TooLargeError):
        fetcher.fetch(server.url("/gz"), max_bytes=4999)


def test_policy_cap_applies_to_plain_bodies(server: LocalServer) -> None:
    # No Content-Length: the cap must be enforced while streaming.
    server.routes["/big"] = slow_body(server, chunk=b"y" * 4096, interval=0)
    with Fetcher(FetchPolicy(allow_private_addresses=True, max_bytes=50_000)) as fetcher:
        with pytest.raises(TooLargeError):
            fetcher.fetch(server.url("/big"))


def test_content_length_over_the_cap_is_refused_before_reading(server: LocalServer, fetcher: Fetcher) -> None:
    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**10))
        h.end_headers()
        h.close_connection = True
        server.stopping.wait()  # reading the body would hang until the deadline

    server.routes["/huge"] = huge
    started = time.monotonic()
    with pytest.raises(TooLargeError, match="Content-Length"):
        fetcher.fetch(server.url("/huge"), max_bytes=1000)
    assert time.monotonic() - started < 1


def test_corrupt_compressed_body(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/bad"] = (200, {"Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip at all")
    with pytest.raises(FetchError, match="corrupt compressed body"):
        fetcher.fetch(server.url("/bad"))


def test_unknown_content_encoding(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/z"] = (200, {"Content-Encoding": "zstd"}, b"whatever")
    with pytest.raises(FetchError, match="unsupported Content-Encoding"):
        fetcher.fetch(server.url("/z"))


# --- time ------------------------------------------------------------------------------------

def test_endless_slow_body_is_cut_at_the_deadline(server: LocalServer) -> None:
    server.routes["/drip"] = slow_body(server, interval=0.05)
    policy = FetchPolicy(allow_private_addresses=True, read_timeout=5, total_timeout=0.6)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(DeadlineError) as caught:
        fetcher.fetch(server.url("/drip"))
    assert 0.5 < time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


def test_headers_trickling_forever_are_cut_at_the_deadline(server: LocalServer) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
        while not server.stopping.wait(0.05):
            h.wfile.write(b"a")
            h.wfile.flush()

    server.routes["/trickle"] = trickle
    policy = FetchPolicy(allow_private_addresses=True, read_timeout=5, total_timeout=0.6)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(DeadlineError):
        fetcher.fetch(server.url("/trickle"))
    assert time.monotonic() - started < 2


def test_silent_server_is_bounded_by_the_read_timeout(server: LocalServer) -> None:
    server.routes["/silent"] = never_answer(server)
    policy = FetchPolicy(allow_private_addresses=True, read_timeout=0.4, total_timeout=10)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(FetchError, match="timed out") as caught:
        fetcher.fetch(server.url("/silent"))
    assert time.monotonic() - started < 2
    assert type(caught.value) is FetchError
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_silent_server_is_bounded_by_the_deadline_too(server: LocalServer) -> None:
    server.routes["/silent"] = never_answer(server)
    policy = FetchPolicy(allow_private_addresses=True, read_timeout=30, total_timeout=0.4)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(DeadlineError):
        fetcher.fetch(server.url("/silent"))
    assert time.monotonic() - started < 2


# --- redirects -------------------------------------------------------------------------------

def test_redirect_chain_with_relative_locations(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/a/start"] = redirect(302, "next")                  # relative to /a/
    server.routes["/a/next"] = redirect(301, "/b/../final?x=1")
    server.routes["/final"] = (200, {}, b"done")
    result = fetcher.fetch(server.url("/a/start"))
    assert result.body == b"done"
    assert result.url == server.url("/a/start")
    assert result.final_url == server.url("/final?x=1")
    assert result.permanent_redirect is None  # a 302 in the chain: keep the old address
    assert server.paths() == ["/a/start", "/a/next", "/final?x=1"]


@pytest.mark.parametrize("statuses", [(301,), (308,), (301, 308)])
def test_permanent_chain_records_the_new_address(server: LocalServer, fetcher: Fetcher, statuses) -> None:
    for i, status in enumerate(statuses):
        server.routes[f"/old{i}"] = redirect(status, server.url(f"/old{i + 1}"))
    server.routes[f"/old{len(statuses)}"] = (200, {}, b"moved")
    result = fetcher.fetch(server.url("/old0"))
    assert result.permanent_redirect == server.url(f"/old{len(statuses)}") == result.final_url


@pytest.mark.parametrize("statuses", [(302,), (307,), (303,), (301, 302)])
def test_temporary_hop_records_no_new_address(server: LocalServer, fetcher: Fetcher, statuses) -> None:
    for i, status in enumerate(statuses):
        server.routes[f"/t{i}"] = redirect(status, f"/t{i + 1}")
    server.routes[f"/t{len(statuses)}"] = (200, {}, b"here")
    result = fetcher.fetch(server.url("/t0"))
    assert result.body == b"here" and result.permanent_redirect is None


def test_redirect_loop(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/a"] = redirect(302, "/b")
    server.routes["/b"] = redirect(302, "/a#again")
    with pytest.raises(TooManyRedirectsError, match="loop"):
        fetcher.fetch(server.url("/a"))
    assert server.paths() == ["/a", "/b"]


def test_redirect_limit(server: LocalServer) -> None:
    for i in range(7):
        server.routes[f"/h{i}"] = redirect(302, f"/h{i + 1}")
    server.routes["/h7"] = (200, {}, b"end")
    with Fetcher(FetchPolicy(allow_private_addresses=True, max_redirects=5)) as fetcher:
        assert fetcher.fetch(server.url("/h2")).body == b"end"  # exactly 5 redirects
        with pytest.raises(TooManyRedirectsError, match="more than 5"):
            fetcher.fetch(server.url("/h1"))  # 6


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.org/x", "javascript:alert(1)"])
def test_redirect_to_other_schemes_is_refused(server: LocalServer, fetcher: Fetcher, location: str) -> None:
    server.routes["/r"] = redirect(302, location)
    with pytest.raises(UnsupportedURLError):
        fetcher.fetch(server.url("/r"))
    assert server.paths() == ["/r"]


def test_redirect_without_location(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/r"] = (302, {}, b"")
    with pytest.raises(FetchError, match="without a Location"):
        fetcher.fetch(server.url("/r"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed", "javascript:alert(1)",
                                 "data:text/html,<p>hi</p>", "gopher://example.org/", "not a url", ""])
def test_only_http_and_https(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(UnsupportedURLError) as caught:
        fetcher.fetch(url)
    assert caught.value.url == url


# --- conditional requests and statuses -------------------------------------------------------

def test_conditional_get_304(server: LocalServer, fetcher: Fetcher) -> None:
    def conditional(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == '"v7"':
            h.send_response(304)
            h.end_headers()
        else:
            body = b"<rss/>"
            h.send_response(200)
            h.send_header("ETag", '"v7"')
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

    server.routes["/feed"] = conditional
    first = fetcher.fetch(server.url("/feed"))
    assert first.status == 200 and first.etag == '"v7"'
    second = fetcher.fetch(server.url("/feed"), etag=first.etag, last_modified="Thu, 24 May 2018 14:00:00 GMT")
    assert second.not_modified and second.status == 304 and second.body == b""
    assert second.etag == '"v7"'
    sent = server.requests[1].headers
    assert sent["if-none-match"] == '"v7"'
    assert sent["if-modified-since"] == "Thu, 24 May 2018 14:00:00 GMT"


def test_429_with_retry_after_seconds(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/busy"] = (429, {"Retry-After": "120"}, b"slow down")
    with pytest.raises(HTTPStatusError) as caught:
        fetcher.fetch(server.url("/busy"))
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    assert caught.value.url == server.url("/busy")


def test_503_with_retry_after_date(server: LocalServer, fetcher: Fetcher) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server.routes["/down"] = (503, {"Retry-After": later}, b"")
    with pytest.raises(HTTPStatusError) as caught:
        fetcher.fetch(server.url("/down"))
    assert caught.value.status == 503
    assert caught.value.retry_after is not None and 80 < caught.value.retry_after <= 90


@pytest.mark.parametrize("status, retry_after", [(404, "60"), (500, "60"), (429, "soon")])
def test_error_status_without_usable_retry_after(server: LocalServer, fetcher: Fetcher, status, retry_after) -> None:
    server.routes["/e"] = (status, {"Retry-After": retry_after}, b"")
    with pytest.raises(HTTPStatusError) as caught:
        fetcher.fetch(server.url("/e"))
    assert caught.value.status == status and caught.value.retry_after is None


# --- addresses -------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001",
                                  "[::ffff:127.0.0.1]", "0.0.0.0", "[::1]"])
def test_private_addresses_are_refused_without_a_request(server: LocalServer, host: str) -> None:
    server.routes["/"] = (200, {}, b"secret")
    url = server.url("/", host=host)
    with Fetcher(FetchPolicy(connect_timeout=1, read_timeout=1, total_timeout=2)) as fetcher:
        with pytest.raises(BlockedAddressError) as caught:
            fetcher.fetch(url)
    assert caught.value.url == url
    assert isinstance(caught.value.__cause__, BlockedAddressError)
    assert server.requests == []


def test_connection_refused_is_a_plain_fetch_error(fetcher: Fetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(FetchError, match="cannot connect") as caught:
        fetcher.fetch(url)
    assert type(caught.value) is FetchError and caught.value.url == url
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_unresolvable_host_is_a_plain_fetch_error(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="cannot resolve host") as caught:
        fetcher.fetch("http://no-such-host.invalid/feed")
    assert type(caught.value) is FetchError
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# --- concurrency -----------------------------------------------------------------------------

def _fetch_all(fetcher: Fetcher, urls: list[str]) -> None:
    errors: list[BaseException] = []

    def run(url: str) -> None:
        try:
            fetcher.fetch(url)
        except BaseException as e:  # re-raised in the test thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_per_host_concurrency_is_bounded(server: LocalServer) -> None:
    server.routes["/slow"] = delayed(0.2, 200, {}, b"ok")
    with Fetcher(LOCAL, max_connections=16, per_host=2) as fetcher:
        _fetch_all(fetcher, [server.url("/slow")] * 6)
    assert len(server.requests) == 6
    assert server.max_concurrent == 2


def test_global_concurrency_is_bounded(server: LocalServer) -> None:
    # Two host names for the same server: the per-host bound alone would allow 4 at once.
    server.routes["/slow"] = delayed(0.2, 200, {}, b"ok")
    urls = [server.url("/slow", host=h) for h in ("127.0.0.1", "localhost")] * 4
    with Fetcher(LOCAL, max_connections=3, per_host=2) as fetcher:
        _fetch_all(fetcher, urls)
    assert len(server.requests) == 8
    assert server.max_concurrent == 3


def test_cookies_are_not_kept_between_fetches(server: LocalServer, fetcher: Fetcher) -> None:
    server.routes["/set"] = (200, {"Set-Cookie": "track=1; Path=/"}, b"")
    server.routes["/next"] = (200, {}, b"")
    fetcher.fetch(server.url("/set"))
    fetcher.fetch(server.url("/next"))
    assert "cookie" not in server.requests[1].headers


# --- name resolution, closing, Cache-Control -------------------------------------------------

def test_name_resolution_is_bounded_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that never answers (stood in for the real one: no network here) cannot hold a
    fetch past its deadline; the lookup is abandoned in its worker thread."""
    from monitor import netguard

    released = threading.Event()
    asked: list[str] = []

    def silent_resolver(host: str, *args: object, **kwargs: object) -> list:
        asked.append(host)
        released.wait(30)
        raise OSError("released")

    monkeypatch.setattr(netguard, "_getaddrinfo", silent_resolver)
    policy = FetchPolicy(connect_timeout=5, read_timeout=5, total_timeout=0.5)
    try:
        with Fetcher(policy) as fetcher, pytest.raises(DeadlineError) as caught:
            fetcher.fetch("http://slow-resolver.example/feed")
    finally:
        released.set()
    assert asked == ["slow-resolver.example"]
    assert "took longer than" in str(caught.value.__cause__)
    assert isinstance(caught.value.__cause__, httpx.ConnectTimeout)


def test_numeric_hosts_need_no_resolver(monkeypatch: pytest.MonkeyPatch, server: LocalServer) -> None:
    from monitor import netguard

    def no_resolver(*args: object, **kwargs: object) -> list:
        raise AssertionError("the resolver was asked about a numeric address")

    monkeypatch.setattr(netguard, "_getaddrinfo", no_resolver)
    server.routes["/n"] = (200, {}, b"numeric")
    with Fetcher(LOCAL) as fetcher:
        assert fetcher.fetch(server.url("/n", host="127.1")).body == b"numeric"


def test_close_ends_fetches_in_flight(server: LocalServer) -> None:
    """A stopping daemon closes its fetcher: a fetch stuck on a silent server ends at once."""
    server.routes["/silent"] = never_answer(server)
    fetcher = Fetcher(FetchPolicy(allow_private_addresses=True, read_timeout=60, total_timeout=120))
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            fetcher.fetch(server.url("/silent"))
        except BaseException as e:  # inspected below
            outcome.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    while not server.requests:
        time.sleep(0.01)
    fetcher.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], FetchError) and "closed" in str(outcome[0])


@pytest.mark.parametrize("value, seconds", [
    ("max-age=600", 600.0), ("public, max-age=3600", 3600.0), ('max-age="120", must-revalidate', 120.0),
    ("s-maxage=600", None), ("max-age=0", None), ("no-cache, max-age=600", None), ("no-store", None),
    ("private, max-age=300", 300.0), ("max-age=soon", None), ("", None),
])
def test_cache_max_age(value: str, seconds: float | None) -> None:
    assert cache_max_age({"cache-control": value} if value else {}) == seconds


def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver answering one public and one private address (stood in: no DNS here)."""
    from monitor import netguard

    def mixed(host: str, port: int, *args: object, **kwargs: object) -> list:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(netguard, "_getaddrinfo", mixed)
    with Fetcher(FetchPolicy(total_timeout=2)) as fetcher, pytest.raises(BlockedAddressError) as caught:
        fetcher.fetch("http://mixed.example/feed")
    assert str(caught.value) == ("http://mixed.example/feed: refused: mixed.example: resolves to 10.1.2.3, "
                                 "which is private")


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example"])
def test_an_invalid_host_name_is_a_plain_fetch_error(host: str) -> None:
    with Fetcher(FetchPolicy(total_timeout=2)) as fetcher, pytest.raises(FetchError, match="invalid host name"):
        fetcher.fetch(f"http://{host}/feed")
