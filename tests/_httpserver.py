"""A real HTTP server on 127.0.0.1 for tests: serves fixed routes and records what it received.

    with LocalServer({"/feed": (200, {"Content-Type": "application/rss+xml"}, rss_bytes)}) as server:
        fetcher.fetch(server.url("/feed"))
        assert server.requests[0].headers["user-agent"].startswith("monitor/")

A route is either a `(status, headers, body)` tuple, answered with a Content-Length, or a
callable `handler(request_handler)` that writes the response itself (slow or endless bodies,
silence, malformed answers). Callables that wait should wait on `server.stopping` so the
server can shut down promptly. `slow_body` and `never_answer` build the common attack routes.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Handler = Callable[[BaseHTTPRequestHandler], None]
Route = tuple[int, Mapping[str, str], bytes] | Handler


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str                       # as sent, with the query string
    headers: Mapping[str, str]      # lower-case names


class LocalServer:
    """A threaded HTTP/1.1 server on an ephemeral port of `address` (any of 127.0.0.0/8, so that
    several servers are several hosts to the fetcher's per-host limit), running until `close()`."""

    def __init__(self, routes: Mapping[str, Route] | None = None, *, address: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self.max_concurrent = 0
        self._active = 0
        self._lock = threading.Lock()
        self.address = address
        self._httpd = ThreadingHTTPServer((address, 0), _handler_class(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.address}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _route(self, path: str) -> Route | None:
        return self.routes.get(path) or self.routes.get(path.split("?", 1)[0])

    def _enter(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1


def _handler_class(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5  # idle keep-alive connections end on their own
        # TCP_NODELAY, as real servers: otherwise each response on a kept-alive connection waits
        # 40 ms for the client's delayed ACK, and a host serves 2 fetches at a time 50 pages a second.
        disable_nagle_algorithm = True

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (caps, deadlines): exactly what attack tests provoke

        def do_GET(self) -> None:
            self._dispatch()

        def do_HEAD(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output readable

        def _dispatch(self) -> None:
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            server._enter(request)
            try:
                route = server._route(self.path)
                if route is None:
                    _send(self, 404, {"Content-Type": "text/plain"}, b"not found")
                elif callable(route):
                    route(self)
                else:
                    _send(self, *route)
            finally:
                server._leave()

    return _Handler


def _send(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if not any(name.lower() == "content-length" for name in headers):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def slow_body(server: LocalServer, chunk: bytes = b"x", interval: float = 0.1,
              headers: Mapping[str, str] | None = None) -> Handler:
    """A 200 whose body never ends: `chunk` every `interval` seconds until the client leaves."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        for name, value in (headers or {"Content-Type": "text/html"}).items():
            h.send_header(name, value)
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        while not server.stopping.is_set():
            h.wfile.write(chunk)
            h.wfile.flush()
            server.stopping.wait(interval)

    return handler


def never_answer(server: LocalServer) -> Handler:
    """Read the request, then say nothing until the server stops."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        server.stopping.wait()

    return handler


def delayed(seconds: float, status: int, headers: Mapping[str, str], body: bytes) -> Handler:
    """Answer normally after `seconds`: makes concurrent requests overlap so they can be counted."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        _send(h, status, headers, body)

    return handler


def serve_site(server: LocalServer, root: Path, *, page_delay: float) -> None:
    """Serve a rendered site folder (monitor.demo.site.render_site) from `server`: feeds at once,
    every page `page_delay` seconds late, so that a pass lasts long enough to be interrupted."""
    for path in root.rglob("*"):
        if path.is_file():
            rel = "/" + path.relative_to(root).as_posix()
            body = path.read_bytes()
            if path.name == "feed.xml":
                server.routes[rel] = (200, {"Content-Type": "application/rss+xml"}, body)
            else:
                route = delayed(page_delay, 200, {"Content-Type": "text/html; charset=utf-8"}, body)
                server.routes[rel] = route
                server.routes[rel.removesuffix("index.html")] = route
