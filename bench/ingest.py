"""Ingest benchmark: `monitor run --once` over a generated news web of 10,000 articles on 127.0.0.1.

    python bench/ingest.py [--feeds 100] [--per-feed 100] [--database URL] [--workers 0]

Generates `feeds x per-feed` small articles (a title, a standfirst and five paragraphs of news
prose, one in twenty about the 2018 summit so matching has work to do), renders them with the
demo site's renderer (RSS, Atom and full-text RSS feeds; pages with navigation, sidebar and
footer), serves them from memory with ETags, and runs one pass as a separate process, exactly as
a user would. Prints wall time, articles per second and peak memory.

Peak memory is measured two ways, both over the whole process tree (the monitor and its
extraction workers): `ru_maxrss` of RUSAGE_CHILDREN after the run (the largest single process,
as the kernel reports it), and the largest sum over the tree of proportional set size (PSS, from
/proc/PID/smaps_rollup, shared pages divided among the processes sharing them), sampled every
0.25 s. The target is a peak of at most 400 MiB. No assertions: the figures are for people.

second_pass.py imports the site and the runner from here.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.demo.site import render_site

# -- a generated news web --------------------------------------------------------------------

_SUBJECTS = ["The government", "Opposition leaders", "The central bank", "Local officials", "The ministry",
             "Union representatives", "Investors", "The committee", "Aid agencies", "Residents", "Police",
             "The prime minister", "Regulators", "Economists", "The mayor", "Negotiators"]
_VERBS = ["announced", "rejected", "delayed", "welcomed", "questioned", "approved", "criticised", "defended",
          "proposed", "reviewed", "postponed", "confirmed", "warned about", "called for", "dismissed"]
_OBJECTS = ["a new budget", "the transport plan", "an inquiry into the floods", "changes to the tax code",
            "the trade agreement", "higher interest rates", "the housing programme", "a ban on night flights",
            "the election timetable", "emergency funding", "the water reform", "a review of school funding",
            "the pension overhaul", "tighter border checks", "the energy subsidy"]
_TAILS = ["on Tuesday", "after weeks of talks", "despite strong objections", "in a brief statement",
          "according to people familiar with the matter", "at a news conference", "late on Friday",
          "following a heated debate", "amid growing pressure", "in a written reply to lawmakers"]
_PLACES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Accra", "Hanoi", "Perth", "Bergen", "Recife"]
_SUMMIT = ["President Donald Trump and North Korean leader Kim Jong Un met in Singapore",
           "Kim Jong Un and Donald Trump shook hands at the Capella hotel on Sentosa island",
           "The summit in Singapore ended with a joint statement on the denuclearization of the Korean peninsula",
           "Officials in Pyongyang and Washington prepared for the Trump-Kim summit",
           "Secretary of State Mike Pompeo said North Korea's commitment to denuclearization was firm"]


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."


def generate_articles(feeds: int, per_feed: int, seed: int = 2018) -> list[dict]:
    """`feeds x per_feed` article dicts for monitor.demo.site.render_site; deterministic for a seed."""
    rng = random.Random(seed)
    articles = []
    for f in range(feeds):
        outlet = f"{rng.choice(_PLACES)} {rng.choice(['Herald', 'Times', 'Post', 'Courier', 'Gazette'])} {f}"
        for a in range(per_feed):
            summit = rng.random() < 0.05
            lead = rng.choice(_SUMMIT) + "." if summit else _sentence(rng)
            paragraphs = [" ".join([lead] + [_sentence(rng) for _ in range(3)])]
            for _ in range(4):
                extra = [rng.choice(_SUMMIT) + "."] if summit and rng.random() < 0.5 else []
                paragraphs.append(" ".join(extra + [_sentence(rng) for _ in range(rng.randint(3, 5))]))
            title = (rng.choice(["Trump and Kim meet in Singapore", "Singapore summit: Kim and Trump sign statement",
                                 "North Korea summit ends with pledge"]) if summit
                     else f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}")
            day = 1 + (a * 29) // max(per_feed, 1)
            articles.append({
                "id": f"f{f}-a{a}", "outlet": outlet, "feed": f"outlet-{f}", "path": f"/2018/06/{day:02d}/story-{a}",
                "title": title, "author": f"Reporter {rng.randint(1, 400)}",
                "published": f"2018-06-{day:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+00:00",
                "summary": paragraphs[0].split(". ")[0] + ".", "body": "\n\n".join(paragraphs), "lang": "en",
                "dup_of": "",
            })
    return articles


# -- served from memory, with ETags ------------------------------------------------------------

class NewsWeb:
    """Rendered articles served from memory on 127.0.0.1; `If-None-Match` with the current ETag gets 304."""

    def __init__(self, articles: list[dict]) -> None:
        self._files: dict[str, tuple[str, bytes, str]] = {}
        self.feed_urls: list[str] = []
        self.counts = {"200": 0, "304": 0, "404": 0}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._render(articles)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _render(self, articles: list[dict]) -> None:
        by_feed: dict[str, list[dict]] = {}
        for article in articles:
            by_feed.setdefault(article["feed"], []).append(article)
        with tempfile.TemporaryDirectory(prefix="monitor-bench-site-") as tmp:
            root = Path(tmp)
            # One outlet at a time: the "most read" box ranks within the articles rendered together.
            for group in by_feed.values():
                self.feed_urls += render_site(group, root, self.base_url)
            for path in root.rglob("*"):
                if path.is_file():
                    rel = "/" + path.relative_to(root).as_posix()
                    body = path.read_bytes()
                    ctype = "application/rss+xml" if path.suffix == ".xml" else "text/html; charset=utf-8"
                    etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                    self._files[rel] = (ctype, body, etag)
                    if rel.endswith("/index.html"):
                        self._files[rel[: -len("index.html")]] = (ctype, body, etag)

    def count(self, status: str) -> None:
        with self._lock:
            self.counts[status] += 1

    def reset_counts(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(self.counts, 0)

    def lookup(self, path: str) -> tuple[str, bytes, str] | None:
        return self._files.get(path.split("?", 1)[0])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _handler(web: NewsWeb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
        # client's delayed ACK of the headers (40 ms a response on a kept-alive connection), and
        # the benchmark would measure that instead of the monitor. Real servers set TCP_NODELAY.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            found = web.lookup(self.path)
            if found is None:
                web.count("404")
                self._send(404, "text/plain", b"not found", None)
                return
            ctype, body, etag = found
            if self.headers.get("If-None-Match") == etag:
                web.count("304")
                self._send(304, None, b"", etag)
            else:
                web.count("200")
                self._send(200, ctype, body, etag)

        def _send(self, status: int, ctype: str | None, body: bytes, etag: str | None) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            if etag:
                self.send_header("ETag", etag)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


# -- running the monitor -----------------------------------------------------------------------

@dataclass(frozen=True)
class PassRun:
    wall_seconds: float          # the whole command: interpreter start, imports, the pass, exit
    pass_seconds: float | None   # the pass alone, as the monitor's summary line reports it
    summary: str
    peak_pss_mib: float          # largest sampled PSS sum over the process tree
    max_rss_mib: float           # ru_maxrss of the largest child process so far (RUSAGE_CHILDREN)


def write_config(folder: Path, feed_urls: list[str], *, database: str | None, workers: int,
                 concurrency: int) -> Path:
    """A config for the generated web: private addresses allowed (127.0.0.1), the summit story on."""
    url = database or f"sqlite:///{folder / 'bench.db'}"
    feeds = "".join(f'\n[[feeds]]\nurl = "{u}"\n' for u in feed_urls)
    # Every feed is on 127.0.0.1, so the per-host limit is the overall one.
    text = (f'[database]\nurl = "{url}"\n\n'
            f"[fetch]\nallow_private_addresses = true\nconcurrency = {concurrency}\nper_host = {concurrency}\n\n"
            f"[extract]\nworkers = {workers}\n\n[log]\nlevel = \"warning\"\n\n"
            f'[[stories]]\nid = "trump-kim-summit-2018"\n{feeds}')
    path = folder / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class ChildRun:
    """One `monitor` command run as a child process: its output, wall time and memory."""
    out: str
    err: str
    wall_seconds: float
    peak_pss_mib: float     # the summed PSS of the process tree, sampled
    max_rss_mib: float      # the largest child's peak RSS, as the kernel reports it


def run_monitor(config: Path, *args: str) -> ChildRun:
    """Run `monitor --config CONFIG ARGS...` as a child process and measure it; exit on failure."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _PeakSampler(child.pid)
    sampler.start()
    out, err = child.communicate()
    wall = time.monotonic() - started
    sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"monitor {' '.join(args)} exited with {child.returncode}:\n{err[-4000:]}")
    # Linux reports ru_maxrss in KiB.
    return ChildRun(out, err, wall, sampler.peak_kib / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def run_pass(config: Path) -> PassRun:
    """Run `monitor --config CONFIG run --once` as a child process and measure it."""
    run = run_monitor(config, "run", "--once")
    summary = next((line for line in reversed(run.err.splitlines()) if "pass done" in line or "stopped" in line),
                   run.err.strip())
    found = re.search(r"(?:pass done|stopped) in ([0-9.]+)s", summary)
    return PassRun(wall_seconds=run.wall_seconds, pass_seconds=float(found.group(1)) if found else None, summary=summary,
                   peak_pss_mib=run.peak_pss_mib, max_rss_mib=run.max_rss_mib)


class _PeakSampler(threading.Thread):
    """Samples the summed PSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kib = pid, every, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(pid) for pid in _tree(self.pid)))
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue   # gone meanwhile
    return pids


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


def _articles_per_second(run: PassRun, articles: int) -> str:
    rate = f"{articles / run.wall_seconds:.1f} articles/s over the whole command"
    if run.pass_seconds:
        rate += f", {articles / run.pass_seconds:.1f} articles/s over the pass"
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--per-feed", type=int, default=100)
    parser.add_argument("--database", help="database URL (an empty database); default: SQLite in a temporary folder")
    parser.add_argument("--workers", type=int, default=0, help="extract.workers (0 = one per core)")
    parser.add_argument("--concurrency", type=int, default=16, help="fetch.concurrency and fetch.per_host")
    args = parser.parse_args(argv)

    articles = generate_articles(args.feeds, args.per_feed)
    started = time.monotonic()
    web = NewsWeb(articles)
    page_bytes = sum(len(web.lookup(f"/{a['feed']}{a['path']}/")[1]) for a in articles[:200]) / min(200, len(articles))
    print(f"site: {len(web.feed_urls)} feeds, {len(articles)} articles (pages of {page_bytes / 1024:.1f} KiB on "
          f"average), rendered in {time.monotonic() - started:.1f}s at {web.base_url}")
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
            config = write_config(Path(tmp), web.feed_urls, database=args.database, workers=args.workers,
                                  concurrency=args.concurrency)
            run = run_pass(config)
    finally:
        web.close()
    print(f"monitor: {run.summary}")
    print(f"wall time: {run.wall_seconds:.1f}s (pass {run.pass_seconds}s)")
    print(f"throughput: {_articles_per_second(run, len(articles))}")
    print(f"peak memory: {run.peak_pss_mib:.0f} MiB PSS summed over the monitor's process tree (sampled every "
          f"0.25s); largest single process ru_maxrss {run.max_rss_mib:.0f} MiB; target <= 400 MiB")
    print(f"requests served: {web.counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
