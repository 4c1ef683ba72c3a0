"""Many-feeds benchmark: 100,000 feeds on 2,000 loopback hosts, most of them unchanged.

    python bench/many_feeds.py [--feeds 100000] [--hosts N] [--database sqlite|postgresql://...]
                               [--changed 0.005] [--failing 0.01] [--latency 0] [--concurrency 16] [--per-host 2]

A separate server process answers on `hosts` addresses of 127.0.0.0/8 (127.1.x.y; Linux routes
the whole /8 to the loopback interface), 50 feeds a host by default, an outlet's feeds listed
together as an OPML export lists them. Each feed answers a conditional GET with its ETag by
`304`; a small share (`--changed`) lists two new entries, whose pages are served too; a small
share (`--failing`) fails: 500, 404, a connection reset, or no answer at all (the timeouts are
kept at 1 s). The monitor is the real command, `monitor --config FILE run --once`, a child
process; its feeds are the configuration's `[[feeds]]`, loaded as every command loads them.

Steps, on one database (SQLite in a temporary folder, or a fresh database `bench_feeds` on the
PostgreSQL server named, dropped afterwards):

1. load: the feeds stored from the configuration (`Store.sync_feeds`, what every command does
   first), and each given the ETag of its first answer (`Store.record_feed_results`, what a pass
   writes after a 200): a first pass of 100,000 `200`s would only measure feedparser.
2. the daemon's due-feed query, timed on the loaded database: SQLite's `Store.due_feeds` (every
   feed due, then none due) and PostgreSQL's `claim_due_feeds` of one batch.
3. a mixed pass: `run --once` with new entries and failures; peak memory of the process tree.
4. an unchanged pass: every feed answers `304`; conditional requests a second, the monitor's
   CPU time against the pass's wall time.
5. the same unchanged pass under a profiler (cProfile with a thread-CPU clock in every thread),
   summarised by where the CPU went: HTTP client, database, the monitor's own code, start-up.

Prints figures with their targets and whether they hold; the last line sums them up.
No assertions: the figures are for people.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import _PeakSampler  # noqa: E402

MEMORY_TARGET_MIB = 400
DUE_QUERY_TARGET_S = 1.0        # a tick that finds nothing due must stay far below the tick (30 s)
DUE_SHARE_TARGET = 0.05         # loading every feed due: at most 5% of the pass over them
# An unchanged pass is bound by the network, not the monitor, when one core of the monitor could
# check at least twice the feeds a second that fetch.concurrency requests in flight allow at a
# 50 ms round trip (a near server; real feeds are often slower, which only widens the margin).
RTT_S = 0.05
CEILING_MARGIN = 2.0
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "bench_feeds"

# -- the served web ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Web:
    feeds: int
    hosts: int
    port: int
    changed: float
    failing: float
    latency: float

    def host(self, n: int) -> str:
        """The address of feed `n`'s host: an outlet's feeds are consecutive, as an OPML lists them."""
        h = n * self.hosts // self.feeds
        return f"127.{1 + h // 65024}.{(h // 254) % 256}.{h % 254 + 1}"

    def addresses(self) -> list[str]:
        return sorted({self.host(n) for n in range(self.feeds)})

    def url(self, n: int) -> str:
        return f"http://{self.host(n)}:{self.port}/f/{n}.xml"

    def kind(self, n: int) -> str:
        """'changed', 'unchanged' or a failure: '500', '404', 'reset', 'timeout'. Spread by a hash."""
        r = (n * 2654435761 % 2**32) / 2**32
        if r < self.changed:
            return "changed"
        if r < self.changed + self.failing:
            return ("500", "500", "500", "404", "404", "404", "reset", "timeout")[n % 8]
        return "unchanged"


_KINDS = ("304", "200 feed", "200 page", "500", "404", "reset", "timeout", "other")


def _feed_xml(n: int, version: int, host: str, port: int) -> bytes:
    items = "".join(
        f"<item><title>Outlet {n} report {k}: officials review the plan</title>"
        f"<link>http://{host}:{port}/p/{n}/{k}.html</link><guid>n{n}-{k}</guid>"
        f"<pubDate>Mon, 07 Dec 2026 0{k}:00:00 GMT</pubDate></item>"
        for k in range(1, 3)) if version == 2 else ""
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Outlet {n}</title>'
            f"<link>http://{host}:{port}/</link><description>feed {n}</description>{items}</channel></rss>").encode()


def _page_html(n: int, k: int) -> bytes:
    para = ("Officials of the regional council reviewed the transport plan on Tuesday after weeks of talks, "
            "and residents questioned the timetable in a brief statement. ")
    body = "".join(f"<p>{para * 3} (paragraph {i} of report {k} from outlet {n})</p>" for i in range(6))
    return (f"<!doctype html><html><head><title>Outlet {n} report {k}</title></head><body><nav>Home News</nav>"
            f"<article><h1>Outlet {n} report {k}: officials review the plan</h1>{body}</article>"
            f"<footer>Contact</footer></body></html>").encode()


def _serve(web: Web, phase: Any, counts: Any, ready: Any) -> None:
    """The server process: one asyncio loop listening on every host address."""

    class Http(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t, self.buf = transport, b""
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                self.answer(head.decode("latin-1"))

        def answer(self, head: str) -> None:
            lines = head.split("\r\n")
            path = lines[0].split(" ")[1] if " " in lines[0] else "/"
            inm = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("if-none-match:")), None)
            host = next((ln.split(":", 1)[1].strip().split(":")[0] for ln in lines[1:]
                         if ln.lower().startswith("host:")), "")
            status, body, etag, kind = self.route(path, inm, host)
            counts[_KINDS.index(kind)] += 1
            if kind == "reset":
                self.t.abort()
                return
            if kind == "timeout":
                return          # never answered: the monitor's read timeout ends it
            reason = {200: "OK", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}[status]
            head_out = (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                        + (f'ETag: "{etag}"\r\n' if etag else "")
                        + ("Content-Type: application/rss+xml\r\n" if "feed" in kind else
                           "Content-Type: text/html; charset=utf-8\r\n" if kind == "200 page" else "")
                        + "\r\n").encode()
            if web.latency > 0:
                asyncio.get_running_loop().call_later(web.latency, self.write, head_out + body)
            else:
                self.write(head_out + body)

        def write(self, data: bytes) -> None:
            if not self.t.is_closing():
                self.t.write(data)

        def route(self, path: str, inm: str | None, host: str) -> tuple[int, bytes, str | None, str]:
            found = re.fullmatch(r"/f/(\d+)\.xml", path)
            if found:
                n = int(found.group(1))
                kind = web.kind(n)
                mixed = phase.value == 1
                if kind not in ("changed", "unchanged") and mixed:
                    return (500 if kind == "500" else 404), b"", None, kind
                version = 2 if kind == "changed" and (mixed or inm != f'"v1-{n}"') else 1
                etag = f"v{version}-{n}"
                if inm == f'"{etag}"':
                    return 304, b"", etag, "304"
                return 200, _feed_xml(n, version, host, web.port), etag, "200 feed"
            found = re.fullmatch(r"/p/(\d+)/(\d)\.html", path)
            if found:
                return 200, _page_html(int(found.group(1)), int(found.group(2))), None, "200 page"
            return 404, b"", None, "other"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for address in web.addresses():
            await loop.create_server(Http, address, web.port, backlog=256)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.1.0.1", 0))
        return int(s.getsockname()[1])


# -- the monitor as a child process -----------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall: float
    pass_seconds: float
    summary: str
    peak_pss_mib: float
    cpu_seconds: float


def _run_monitor(config: Path, *, profile: Path | None = None) -> Run:
    """`monitor --config CONFIG run --once` as a child process: wall time, its CPU time, peak PSS of its tree."""
    prefix = [sys.executable, __file__, "--profile-into", str(profile), "--"] if profile else \
        [sys.executable, "-m", "monitor"]
    started = time.monotonic()
    child = subprocess.Popen([*prefix, "--config", str(config), "run", "--once"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = _PeakSampler(child.pid, every=0.5)
    sampler.start()
    err = child.stderr.read() if child.stderr else ""
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    sampler.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"monitor exited with {child.returncode}:\n{err[-4000:]}")
    summary = next((ln for ln in reversed(err.splitlines()) if "pass done" in ln or "stopped" in ln), err.strip())
    found = re.search(r"(?:pass done|stopped) in ([0-9.]+)s", summary)
    return Run(wall, float(found.group(1)) if found else wall, summary, sampler.peak_kib / 1024,
               usage.ru_utime + usage.ru_stime)


def _due(now: datetime, feed_id: int) -> datetime:
    """Feeds fall due one after the other, over the last minutes, as checks spread them."""
    return now - timedelta(milliseconds=feed_id)


def _all_due(url: str) -> None:
    """Make every feed due now again (the passes before scheduled them hours ahead)."""
    from sqlalchemy import bindparam, select, update

    from monitor.db import models as m
    from monitor.db.store import Store

    store = Store.open(url)
    try:
        now = datetime.now(UTC)
        with store.engine.begin() as conn:
            ids = list(conn.scalars(select(m.Feed.id)))
            conn.execute(update(m.Feed).where(m.Feed.id == bindparam("feed_id")).values(next_due_at=bindparam("due")),
                         [{"feed_id": i, "due": _due(now, i)} for i in ids])
    finally:
        store.close()


def _run_daemon(config: Path, seconds: float, counts: Any) -> tuple[int, float]:
    """`monitor --config CONFIG run` for `seconds`, then SIGTERM: feeds checked, peak PSS of its tree."""
    child = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = _PeakSampler(child.pid, every=0.5)
    sampler.start()
    time.sleep(seconds)
    checked = sum(counts[_KINDS.index(k)] for k in ("304", "200 feed", "500", "404", "reset", "timeout"))
    child.terminate()
    _out, err = child.communicate(timeout=120)
    sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"the daemon exited with {child.returncode}:\n{err[-4000:]}")
    return checked, sampler.peak_kib / 1024


def _profiled_monitor(into: Path, argv: list[str]) -> int:
    """Run the monitor's CLI in this process with a cProfile on the thread-CPU clock in every thread."""
    profiles: list[cProfile.Profile] = []

    def start(*_args: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    threading.setprofile(start)
    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    main_profile.enable()
    try:
        from monitor.cli import main

        return main(argv)
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(main_profile)
        for profile in profiles[1:]:
            try:
                stats.add(profile)
            except (TypeError, ValueError):
                continue
        stats.dump_stats(str(into))


_ROOMS = (
    ("HTTP client (httpx, httpcore, h11, sockets, monitor.fetch, netguard)",
     ("/httpx/", "/httpcore/", "/h11/", "socket.py", "selectors.py", "ssl.py", "monitor/fetch.py",
      "monitor/netguard.py", "<method 'recv", "<method 'send", "<method 'connect", "<built-in method _socket")),
    ("database (SQLAlchemy, drivers)", ("/sqlalchemy/", "sqlite3", "/psycopg", "<method 'execute", "monitor/db/")),
    ("the pass (pipeline, schedule)", ("monitor/pipeline.py", "monitor/schedule.py", "monitor/daemon.py",
                                       "monitor/_types.py", "monitor/urls.py")),
    ("threads and queues", ("threading.py", "concurrent/", "queue.py", "<method 'acquire", "<method 'put",
                            "<method 'get")),
    ("start-up: imports, configuration, feeds synced", ("<frozen importlib", "importlib", "tomllib",
                                                        "monitor/config.py", "<built-in method builtins.exec",
                                                        "<built-in method marshal", "monitor/cli.py")),
)


def _profile_summary(path: Path, top: int = 12) -> tuple[list[str], float]:
    """CPU seconds per room and the costliest functions (own time), from a merged profile."""
    stats = pstats.Stats(str(path))
    rooms: dict[str, float] = {name: 0.0 for name, _ in _ROOMS}
    rooms["other"] = 0.0
    total = 0.0
    rows = []
    for (file, line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{file}:{line}({func})"
        total += tt
        rows.append((tt, where))
        room = next((name for name, keys in _ROOMS if any(k in where for k in keys)), "other")
        rooms[room] += tt
    lines = [f"  {name}: {secs:.1f}s CPU ({secs / total:.0%})" for name, secs in
             sorted(rooms.items(), key=lambda kv: -kv[1]) if secs > 0]
    lines.append("  costliest functions (own CPU time):")
    for tt, where in sorted(rows, reverse=True)[:top]:
        short = re.sub(r"^.*?/(site-packages|lib/python3\.\d+|feeds100k|monitor)/", "", where)
        lines.append(f"    {tt:6.2f}s  {short[:110]}")
    return lines, total


# -- the bench ---------------------------------------------------------------------------------


def _database(arg: str, folder: Path) -> tuple[str, Any]:
    """The database URL to use and a function that removes it afterwards."""
    if arg == "sqlite":
        return f"sqlite:///{folder / 'feeds.db'}", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(arg)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}"))
        conn.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
        admin.dispose()

    return server.set(database=BENCH_DATABASE).render_as_string(hide_password=False), drop


def _write_config(folder: Path, web: Web, url: str, args: argparse.Namespace) -> Path:
    feeds = "".join(f'[[feeds]]\nurl = "{web.url(n)}"\n' for n in range(web.feeds))
    text = (f'[database]\nurl = "{url}"\n\n'
            f"[fetch]\nallow_private_addresses = true\nconcurrency = {args.concurrency}\nper_host = {args.per_host}\n"
            "connect_timeout = 1\nread_timeout = 1\ntotal_timeout = 3\n\n"
            f'[extract]\nworkers = {args.workers}\n\n[log]\nlevel = "warning"\n\n'
            f'[[stories]]\nid = "trump-kim-summit-2018"\n\n{feeds}')
    path = folder / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _load(config: Path) -> tuple[float, float, Any]:
    """Store the configuration's feeds as every command does, then their first ETags. Times both."""
    from monitor.config import load_settings
    from monitor.db.store import FeedResult
    from monitor.runtime import open_store

    started = time.monotonic()
    settings = load_settings(config)
    with open_store(settings) as store:
        synced = time.monotonic() - started
        now = datetime.now(UTC)
        feeds = store.list_feeds()
        started = time.monotonic()
        for start in range(0, len(feeds), 5000):
            store.record_feed_results([FeedResult(f.id, fetched_at=now - timedelta(hours=1), status="ok", error=None,
                                                  error_count=0, next_due_at=_due(now, f.id),
                                                  etag=f'"v1-{f.url.split("/")[-1][:-4]}"')
                                       for f in feeds[start:start + 5000]])
        return synced, time.monotonic() - started, settings


def _due_query_times(url: str, batch: int) -> list[tuple[str, float, int]]:
    """The daemon's tick query on this database: (what, seconds, feeds found)."""
    from monitor.db.leases import Release, claim_due_feeds, new_owner, release_many
    from monitor.db.store import Store

    store = Store.open(url)
    out = []
    try:
        now = datetime.now(UTC)
        if store.dialect_name == "postgresql":
            # The median of a few claims: the first one also compiles the statement.
            times, claimed = [], []
            for _ in range(5):
                started = time.monotonic()
                claims = claim_due_feeds(store, new_owner(), now, batch, 300.0)
                times.append(time.monotonic() - started)
                claimed += claims
            out.append((f"claim_due_feeds (a batch of {batch}, median of 5)", sorted(times)[2], len(claims)))
            release_many(store, [Release(c) for c in claimed])
        started = time.monotonic()
        due = store.due_feeds(now)
        out.append(("due_feeds (every feed due)", time.monotonic() - started, len(due)))
        later = now - timedelta(days=1)
        started = time.monotonic()
        due = store.due_feeds(later)
        out.append(("due_feeds (none due)", time.monotonic() - started, len(due)))
    finally:
        store.close()
    return out


def _verdict(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--profile-into"]:
        return _profiled_monitor(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, help="loopback hosts (default: one per 50 feeds)")
    parser.add_argument("--database", default="sqlite",
                        help=f"'sqlite' (a temporary file) or a PostgreSQL server URL, e.g. {PG_SERVER}: "
                             f"the bench creates the database {BENCH_DATABASE} there and drops it after")
    parser.add_argument("--changed", type=float, default=0.005, help="share of feeds with two new entries")
    parser.add_argument("--failing", type=float, default=0.01, help="share of feeds failing (500, 404, reset, timeout)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server waits before answering")
    parser.add_argument("--concurrency", type=int, default=16, help="fetch.concurrency")
    parser.add_argument("--per-host", type=int, default=2, help="fetch.per_host")
    parser.add_argument("--workers", type=int, default=0, help="extract.workers")
    parser.add_argument("--daemon-seconds", type=float, default=30.0,
                        help="run the daemon this long with every feed due (0: skip)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled pass")
    args = parser.parse_args(argv)

    web = Web(args.feeds, args.hosts or max(1, args.feeds // 50), _free_port(), args.changed, args.failing,
              args.latency)
    ctx = multiprocessing.get_context("fork")
    phase, counts, ready = ctx.Value("i", 1), ctx.Array("l", len(_KINDS)), ctx.Event()
    server = ctx.Process(target=_serve, args=(web, phase, counts, ready), daemon=True)
    server.start()
    if not ready.wait(60):
        raise SystemExit("the server did not start")
    kinds = [web.kind(n) for n in range(web.feeds)]
    backend = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    print(f"web: {web.feeds:,} feeds on {web.hosts:,} hosts (127.1.x.y, {web.feeds // web.hosts} feeds a host), "
          f"{kinds.count('changed'):,} with 2 new entries, {sum(k not in ('changed', 'unchanged') for k in kinds):,} "
          f"failing ({kinds.count('timeout')} never answering); latency {web.latency * 1000:.0f} ms; "
          f"fetch.concurrency {args.concurrency}, per_host {args.per_host}; {backend}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times suffer from it, CPU times less)")
    results: list[tuple[str, bool]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-many-feeds-") as tmp:
            url, drop = _database(args.database, Path(tmp))
            try:
                config = _write_config(Path(tmp), web, url, args)
                synced, validators, _settings = _load(config)
                print(f"load: {web.feeds:,} [[feeds]] read and stored in {synced:.1f}s "
                      f"({web.feeds / synced:,.0f} feeds/s); first ETags written in {validators:.1f}s")

                due_times = _due_query_times(url, args.concurrency)
                for what, secs, found in due_times:
                    print(f"due feeds: {what}: {secs * 1000:.0f} ms, {found:,} feeds")

                def pass_line(name: str, run: Run) -> None:
                    served = ", ".join(f"{k} {v:,}" for k, v in zip(_KINDS, counts) if v)
                    print(f"{name}: {run.summary}")
                    print(f"  command {run.wall:.1f}s, pass {run.pass_seconds:.1f}s, monitor CPU {run.cpu_seconds:.1f}s; "
                          f"peak {run.peak_pss_mib:.0f} MiB PSS over its process tree; served: {served}")

                for i in range(len(_KINDS)):
                    counts[i] = 0
                mixed = _run_monitor(config)
                pass_line("mixed pass", mixed)
                peak = mixed.peak_pss_mib

                phase.value = 2
                for i in range(len(_KINDS)):
                    counts[i] = 0
                calm = _run_monitor(config)
                pass_line("unchanged pass", calm)
                peak = max(peak, calm.peak_pss_mib)
                not_modified = counts[_KINDS.index("304")]
                rate = not_modified / calm.pass_seconds
                busy = calm.cpu_seconds / calm.wall
                per_request_ms = calm.cpu_seconds / max(1, sum(counts)) * 1000
                print(f"conditional requests: {rate:,.0f}/s over the pass ({not_modified:,} answered 304 in "
                      f"{calm.pass_seconds:.1f}s); the monitor's CPU {per_request_ms:.2f} ms a feed, whole command")
                ceiling = 1000 / per_request_ms
                network = min(args.concurrency, args.per_host * web.hosts) / RTT_S
                bound_ok = ceiling >= CEILING_MARGIN * network
                print(f"outside the network: the monitor's CPU was busy {busy:.0%} of the command's {calm.wall:.1f}s "
                      f"(on a loaded machine this is the CPU it got, not the CPU it wanted)")
                print(f"what bounds it: one core of the monitor allows {ceiling:,.0f} feeds/s; the network allows "
                      f"{network:,.0f}/s ({args.concurrency} in flight, {args.per_host} a host on {web.hosts:,} hosts, "
                      f"at a {RTT_S * 1000:.0f} ms round trip); target: monitor >= {CEILING_MARGIN:g} x network: "
                      f"{_verdict(bound_ok)} ({ceiling / network:.1f} x); on loopback the monitor's CPU is the bound")
                results.append(("bound by the network", bound_ok))
                for what, secs, found in due_times:
                    if found == 0 or found < web.feeds:     # a tick with nothing (or one batch) due
                        ok = secs <= DUE_QUERY_TARGET_S
                        target = f"<= {DUE_QUERY_TARGET_S:.0f} s"
                    else:
                        ok = secs <= DUE_SHARE_TARGET * calm.pass_seconds
                        target = f"<= {DUE_SHARE_TARGET:.0%} of the unchanged pass, {secs / calm.pass_seconds:.1%}"
                    print(f"due feeds: {what}: {secs * 1000:.0f} ms (target {target}: {_verdict(ok)})")
                    results.append((f"due query {what.split(' (')[0]} ({found:,} due)", ok))
                print(f"memory: peak {peak:.0f} MiB PSS with {web.feeds:,} feeds loaded "
                      f"(target <= {MEMORY_TARGET_MIB} MiB: {_verdict(peak <= MEMORY_TARGET_MIB)})")
                results.append(("memory", peak <= MEMORY_TARGET_MIB))

                if args.daemon_seconds > 0:
                    _all_due(url)
                    for i in range(len(_KINDS)):
                        counts[i] = 0
                    checked, pss = _run_daemon(config, args.daemon_seconds, counts)
                    peak = max(peak, pss)
                    print(f"daemon (`monitor run`, every feed due): {checked:,} feeds checked in its first "
                          f"{args.daemon_seconds:.0f}s ({checked / args.daemon_seconds:,.0f}/s), first tick included; "
                          f"peak {pss:.0f} MiB PSS")

                if not args.no_profile:
                    profile = Path(tmp) / "pass.prof"
                    for i in range(len(_KINDS)):
                        counts[i] = 0
                    profiled = _run_monitor(config, profile=profile)
                    lines, total = _profile_summary(profile)
                    print(f"profile of the unchanged pass (cProfile, thread CPU clock, every thread; the profiler "
                          f"slows it: command {profiled.wall:.1f}s): {total:.1f}s CPU")
                    print("\n".join(lines))
            finally:
                drop()
    finally:
        server.kill()
        server.join()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    held = [name for name, ok in results if ok]
    missed = [name for name, ok in results if not ok]
    print(f"many_feeds {backend} {web.feeds:,} feeds: {len(held)}/{len(results)} targets hold"
          + (f"; missed: {', '.join(missed)}" if missed else "")
          + f" (memory {peak:.0f} MiB, {rate:,.0f} conditional requests/s, busy {busy:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
