"""The one HTTP client of the monitor: fetch a URL under a size, time and address policy.

Every server is treated as hostile. Redirects are followed by hand so each hop is checked;
bodies are decompressed here, incrementally, so a compression bomb stops at the cap; a total
deadline bounds the whole exchange, including servers that trickle bytes forever; and every
connection goes through `monitor.netguard`, so no URL, redirect or DNS answer can reach the
loopback interface or the local network unless the policy allows it.

`Fetcher.fetch` is synchronous and thread-safe: callers run it in a thread pool.
`Fetcher.close` ends the fetches still in flight within a fraction of a second, so a process
told to stop never waits for a hostile server that trickles bytes or says nothing.
"""
from __future__ import annotations

import email.utils
import logging
import re
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import brotli
import httpcore
import httpx

from monitor import USER_AGENT
from monitor._types import FetchResult
from monitor.exceptions import (
    BlockedAddressError,
    DeadlineError,
    FetchError,
    HTTPStatusError,
    TooLargeError,
    TooManyRedirectsError,
    UnsupportedURLError,
)
from monitor.netguard import GuardedBackend

__all__ = ["FetchPolicy", "Fetcher", "cache_max_age"]

log = logging.getLogger(__name__)

_DEFAULT_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.8"
)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_STATUSES = frozenset({301, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# A blocking read waits at most this long at a time, so that `close()` is noticed promptly.
_READ_SLICE = 0.25
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[,=]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class FetchPolicy:
    allow_private_addresses: bool = False
    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0        # total deadline per request incl. redirects and body
    max_bytes: int = 10 * 1024 * 1024  # cap on the DECODED body (after gzip/deflate/brotli)
    max_redirects: int = 5


class Fetcher:
    """Fetches URLs under a `FetchPolicy`, at most `max_connections` at once, `per_host` per host."""

    def __init__(self, policy: FetchPolicy, *, max_connections: int = 16, per_host: int = 2) -> None:
        self._policy = policy
        self._slots = threading.BoundedSemaphore(max_connections)
        self._per_host = per_host
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._host_slots_lock = threading.Lock()
        self._closed = threading.Event()
        # Requests go straight to the transport, without an httpx.Client: redirects are followed
        # here hop by hop, cookies are never kept or sent (those of one hostile server must neither
        # pile up nor reach another fetch), no proxy or .netrc is read from the environment (a
        # proxy would bypass netguard), and the Client's per-request work (cookie jar, header
        # merging, URL re-parsing) was a third of the CPU a small fetch costs.
        self._transport = DeadlineTransport(policy.allow_private_addresses, max_connections, self._closed)
        self._timeouts = httpx.Timeout(
            connect=policy.connect_timeout,
            read=policy.read_timeout,
            write=policy.read_timeout,
            pool=policy.connect_timeout,
        ).as_dict()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int | None = None,
        accept: str | None = None,
    ) -> FetchResult:
        """GET `url`, following redirects; raise a FetchError subclass on any failure.

        `etag` / `last_modified` make the request conditional (a 304 comes back as a result
        with an empty body). `max_bytes` overrides the policy's cap on the decoded body.
        The total deadline starts once a connection slot is free, so queueing behind other
        fetches of the same host does not count against it.
        """
        limit = self._policy.max_bytes if max_bytes is None else max_bytes
        headers = self._request_headers(etag, last_modified, accept)
        hop = _http_url(url, url)
        visited: set[str] = set()      # filled on the first redirect: most fetches have none
        only_permanent = True
        started: float | None = None
        token = None
        try:
            for redirects in range(self._policy.max_redirects + 1):
                with self._slot(hop.host):
                    if started is None:
                        started = time.monotonic()
                        token = _DEADLINE.set(started + self._policy.total_timeout)
                    outcome = self._exchange(url, hop, headers, limit, etag, started,
                                             permanent=only_permanent and redirects > 0)
                if isinstance(outcome, FetchResult):
                    return outcome
                log.debug("%s: HTTP %d redirect to %s", url, outcome.status, outcome.target)
                only_permanent = only_permanent and outcome.status in _PERMANENT_STATUSES
                if not visited:
                    visited.add(_without_fragment(hop))
                if _without_fragment(outcome.target) in visited:
                    raise TooManyRedirectsError(url, f"redirect loop at {outcome.target}")
                visited.add(_without_fragment(outcome.target))
                hop = outcome.target
            raise TooManyRedirectsError(url, f"more than {self._policy.max_redirects} redirects")
        finally:
            if token is not None:
                _DEADLINE.reset(token)

    def close(self) -> None:
        """Close the connections; fetches in flight in other threads fail within a fraction of a second."""
        self._closed.set()
        self._transport.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request_headers(self, etag: str | None, last_modified: str | None, accept: str | None) -> dict[str, str]:
        headers = {
            "User-Agent": self._policy.user_agent,
            "Accept": accept or _DEFAULT_ACCEPT,
            "Accept-Encoding": "gzip, deflate, br",
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        with self._host_slots_lock:
            host_slot = self._host_slots.setdefault(host, threading.BoundedSemaphore(self._per_host))
        # Always the host's slot first, then a global one: nobody holds a global slot while waiting.
        with host_slot, self._slots:
            yield

    def _exchange(self, url: str, hop: httpx.URL, headers: dict[str, str], limit: int,
                  sent_etag: str | None, started: float, *, permanent: bool) -> FetchResult | _Redirect:
        """One request to `hop`: its result, or where it redirects to."""
        try:
            with _translate_errors(url, hop, self._policy.total_timeout):
                request = httpx.Request("GET", hop, headers=headers, extensions={"timeout": self._timeouts})
                response = self._transport.handle_request(request)
                try:
                    response.request = request
                    if response.status_code in _REDIRECT_STATUSES:
                        return _Redirect(response.status_code, _redirect_target(url, hop, response))
                    return _result(url, hop, response, limit, sent_etag, started, permanent=permanent)
                finally:
                    response.close()
        except FetchError as e:
            if self._closed.is_set():   # whatever the closed connection said, this is why
                raise FetchError(url, "abandoned: the fetcher was closed (the monitor is stopping)") from e
            raise


class _Redirect(NamedTuple):
    status: int
    target: httpx.URL


def _result(url: str, hop: httpx.URL, response: httpx.Response, limit: int,
            sent_etag: str | None, started: float, *, permanent: bool) -> FetchResult:
    status = response.status_code
    if status >= 400:
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = _parse_retry_after(response.headers.get("retry-after"))
        raise HTTPStatusError(url, status, retry_after)
    if 300 <= status < 400 and status != 304:
        raise FetchError(url, f"unexpected HTTP {status} from {hop}")
    body = _read_body(url, response, limit)
    if status == 304:
        # A 304 has no body (HTTP says so, and h11 reads none); reading it to its end is what
        # lets the connection go back to the pool instead of being closed.
        body = b""
    headers = {name.lower(): value for name, value in response.headers.items()}
    final_url = str(hop)
    return FetchResult(
        url=url,
        final_url=final_url,
        status=status,
        headers=headers,
        body=body,
        # A 304 need not repeat the validator; the one we sent is still the current one.
        etag=headers.get("etag") or (sent_etag if status == 304 else None),
        last_modified=headers.get("last-modified"),
        permanent_redirect=final_url if permanent else None,
        elapsed=time.monotonic() - started,
    )


def _http_url(url: str, raw: str) -> httpx.URL:
    """Parse `raw` (the URL asked for, or a redirect target of it) and insist on http(s)."""
    where = "" if raw == url else f"redirect to {raw!r}: "
    try:
        parsed = httpx.URL(raw)
    except httpx.InvalidURL as e:
        raise UnsupportedURLError(url, f"{where}invalid URL: {e}") from e
    if parsed.scheme not in ("http", "https"):
        raise UnsupportedURLError(url, f"{where}only http and https URLs are fetched")
    if not parsed.host:
        raise UnsupportedURLError(url, f"{where}URL has no host")
    return parsed


def _redirect_target(url: str, hop: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(url, f"HTTP {response.status_code} redirect from {hop} without a Location")
    try:
        target = hop.join(location)
    except httpx.InvalidURL as e:
        raise UnsupportedURLError(url, f"redirect to {location!r}: invalid URL: {e}") from e
    return _http_url(url, str(target))


def _without_fragment(url: httpx.URL) -> str:
    return str(url.copy_with(fragment=None))


def cache_max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds a response may be reused according to its Cache-Control header, or None.

    `headers` has lower-case names (as `FetchResult.headers`). `no-store` / `no-cache` and a
    zero or missing max-age give None: the response sets no lower bound on the next check.
    """
    value = headers.get("cache-control", "")
    if not value or _NO_STORE.search(value):
        return None
    match = _MAX_AGE.search(value)
    if match is None or int(match.group(1)) == 0:
        return None
    return float(match.group(1))


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@contextmanager
def _translate_errors(url: str, hop: httpx.URL, total_timeout: float) -> Iterator[None]:
    """Turn whatever the exchange with `hop` raises into a FetchError about `url`."""
    where = "" if str(hop) == url else f"redirect to {hop}: "
    try:
        yield
    except BlockedAddressError as e:  # raised by netguard, naming the host
        raise BlockedAddressError(url, f"{where}refused: {e}") from e
    except httpx.TimeoutException as e:
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineError(url, f"{where}not finished within {total_timeout:g} s") from e
        raise FetchError(url, f"{where}timed out ({type(e).__name__})") from e
    except httpx.ConnectError as e:
        raise FetchError(url, f"{where}cannot connect: {e}") from e
    except httpx.HTTPError as e:
        raise FetchError(url, f"{where}{type(e).__name__}: {e}") from e
    except httpx.InvalidURL as e:
        # httpx parses a redirect's Location while receiving the response, even when not following.
        raise UnsupportedURLError(url, f"{where}unusable redirect Location: {e}") from e
    except (zlib.error, brotli.error) as e:
        raise FetchError(url, f"{where}corrupt compressed body: {e}") from e


# --- bodies ----------------------------------------------------------------------------------

class _Decoder(Protocol):
    def decode(self, data: bytes, max_length: int) -> bytes:
        """Decode more input; return at most about `max_length` bytes."""

    def pending(self) -> bool:
        """True when output is waiting that `decode(b"", n)` would return."""


class _Identity:
    def decode(self, data: bytes, max_length: int) -> bytes:
        return data

    def pending(self) -> bool:
        return False


class _Zlib:
    """gzip, zlib or raw deflate. `wbits=None` sniffs zlib vs raw: servers send both as "deflate"."""

    def __init__(self, wbits: int | None) -> None:
        self._obj = None if wbits is None else zlib.decompressobj(wbits)
        self._head = b""
        self._output_full = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS)
        out = self._obj.decompress(self._obj.unconsumed_tail + data, max_length)
        self._output_full = len(out) >= max_length
        return out

    def pending(self) -> bool:
        obj = self._obj
        return obj is not None and not obj.eof and (bool(obj.unconsumed_tail) or self._output_full)


def _is_zlib_header(data: bytes) -> bool:
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decode(self, data: bytes, max_length: int) -> bytes:
        decoded: bytes = self._obj.process(data, output_buffer_limit=max_length)   # brotli is untyped
        return decoded

    def pending(self) -> bool:
        return not self._obj.can_accept_more_data()


def _decoder(url: str, content_encoding: str) -> _Decoder:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Zlib(None)
    if encoding == "br":
        return _Brotli()
    raise FetchError(url, f"unsupported Content-Encoding {content_encoding!r}")


def _read_body(url: str, response: httpx.Response, limit: int) -> bytes:
    """The decoded body, read and decompressed chunk by chunk, never holding much over `limit`."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(url, f"Content-Length {declared} exceeds the cap of {limit} bytes")
    decoder = _decoder(url, response.headers.get("content-encoding", ""))
    parts: list[bytes] = []
    received = decoded = 0
    for chunk in response.iter_raw():
        # Compressed input counts too: a stream that decodes to nothing must still end.
        received += len(chunk)
        if received > limit:
            raise TooLargeError(url, f"body exceeds the cap of {limit} bytes")
        # Ask for one byte more than the cap allows, so going over is noticed without holding more.
        part = decoder.decode(chunk, limit - decoded + 1)
        while True:
            decoded += len(part)
            if decoded > limit:
                raise TooLargeError(url, f"decoded body exceeds the cap of {limit} bytes")
            parts.append(part)
            if not decoder.pending():
                break
            part = decoder.decode(b"", limit - decoded + 1)
    return b"".join(parts)


# --- connections -----------------------------------------------------------------------------

# The deadline of the fetch running in this thread; connections read it on every socket call.
_DEADLINE: ContextVar[float | None] = ContextVar("monitor_fetch_deadline", default=None)


def _clamp(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """`timeout`, shortened to what is left of the current deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("total deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline, however slowly bytes arrive,
    and whose reads end soon after the fetcher is closed."""

    def __init__(self, inner: httpcore.NetworkStream, closed: threading.Event) -> None:
        self._inner = inner
        self._closed = closed

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = _clamp(timeout, httpcore.ReadTimeout)
        give_up = None if timeout is None else time.monotonic() + timeout
        # Wait in short slices: a socket blocked in recv() does not notice the fetcher closing.
        while True:
            if self._closed.is_set():
                raise httpcore.ReadError("the fetcher was closed")
            wait = _READ_SLICE if give_up is None else min(_READ_SLICE, give_up - time.monotonic())
            if wait <= 0:
                raise httpcore.ReadTimeout("timed out")
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                if give_up is not None and time.monotonic() >= give_up:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._closed)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(GuardedBackend):
    def __init__(self, allow_private: bool, closed: threading.Event) -> None:
        super().__init__(allow_private)
        self._closed = closed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if self._closed.is_set():
            raise httpcore.ConnectError("the fetcher was closed")
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options), self._closed)


@contextmanager
def total_deadline(seconds: float) -> Iterator[None]:
    """Within the block, every connection of a DeadlineTransport ends its reads and writes
    `seconds` from now at the latest, however slowly the other side sends."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose connections come from `_DeadlineBackend`:
    guarded addresses, and the total deadline of the request in progress (`total_deadline`)."""

    def __init__(self, allow_private: bool, max_connections: int, closed: threading.Event) -> None:
        # HTTPTransport cannot be given a network backend; its only state is this pool, so
        # build the pool here instead of calling the parent constructor.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_DeadlineBackend(allow_private, closed),
        )
