"""WARC ingest benchmark: `monitor ingest warc` over a generated archive of 20,000 news pages.

    python bench/warc.py [--pages 20000] [--page-kib 90] [--poll-pages 2000] [--workers 0] [--database URL]

Generates `--pages` articles (bench/ingest.py's news prose, one in twenty about the 2018 summit),
renders them with the demo site's renderer and brings each page to the size of a real news page
(`--page-kib`, 90 KiB by default: inline styles and scripts, a mega-menu, link lists and a
footer, the same for every page of an outlet, as templates are), and writes them with warcio
into one .warc.gz as a crawler would: a request and a response record per page, WARC-Date the
publication time. Then runs `monitor ingest warc` on it as a separate process, exactly as a
user would, and prints pages per second and peak memory over the whole process tree (the
monitor and its extraction workers; PSS summed, sampled every 0.25 s, as bench/ingest.py does).

For comparison it runs a polling pass (`monitor run --once`) over the first `--poll-pages` of the
same pages served on 127.0.0.1, and prints both rates and their ratio. Targets: ingest at least
as fast per page as the polling pass; peak memory at most 400 MiB. The last lines say whether
they hold. No assertions: the figures are for people.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import NewsWeb, generate_articles, run_monitor, run_pass, write_config  # noqa: E402
from warcgen import ArchivedResponse, OtherRecord, Record, write_records  # noqa: E402

from monitor.demo.site import render_site  # noqa: E402

BASE = "https://news.example"
MEMORY_TARGET_MIB = 400

# -- pages of a real size ------------------------------------------------------------------------

_WORDS = ("world politics business markets climate health science tech sport football tennis culture film "
          "music books travel food opinion editorial letters obituaries weather video podcasts newsletters "
          "europe asia africa americas middle-east uk us elections economy energy housing education").split()


def template_parts(outlet: str, kib: int) -> tuple[str, str]:
    """What an outlet's template adds to every page: (into <head>, into <body>), about `kib` KiB in all."""
    rng = random.Random(outlet)
    target = kib * 1024
    css = "".join(f".c{rng.randrange(10**6)} .{rng.choice(_WORDS)}{{margin:{rng.randint(0, 24)}px;"
                  f"color:#{rng.randrange(16**6):06x};font-size:{rng.randint(10, 28)}px}}\n"
                  for _ in range(target * 15 // 100 // 70))
    state = ",".join(f'"{rng.choice(_WORDS)}{i}":{{"id":{rng.randrange(10**9)},"slot":"{rng.choice(_WORDS)}",'
                     f'"sizes":[[300,250],[728,90]],"targeting":{{"sec":"{rng.choice(_WORDS)}"}}}}'
                     for i in range(target * 35 // 100 // 110))
    head = (f"<style>{css}</style>\n<script>window.__CONFIG__={{{state}}};"
            "(function(w,d){var s=d.createElement('script');s.async=1;s.src='/static/app.js';"
            "d.head.appendChild(s)})(window,document);</script>\n")
    menu_items = []
    while sum(map(len, menu_items)) < target * 50 // 100:
        section = rng.choice(_WORDS)
        links = "".join(f'<li><a href="/{section}/{rng.choice(_WORDS)}-{rng.randrange(10**4)}" class="menu-link">'
                        f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)}</a></li>" for _ in range(12))
        menu_items.append(f'<li class="menu-section"><span>{section.title()}</span><ul>{links}</ul></li>')
    body = (f'<div class="mega-menu" role="navigation"><ul>{"".join(menu_items)}</ul></div>\n'
            f'<div class="footer-links"><p>&copy; {outlet}. All rights reserved.</p></div>\n')
    return head, body


def realistic(html: str, parts: tuple[str, str]) -> str:
    head, body = parts
    html = html.replace("</head>", head + "</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + body, html, count=1)


class RealSizeWeb(NewsWeb):
    """bench/ingest.py's in-memory news web, its pages at a real size."""

    def __init__(self, articles: list[dict], kib: int) -> None:
        self._kib = kib
        super().__init__(articles)

    def _render(self, articles: list[dict]) -> None:
        super()._render(articles)
        parts: dict[str, tuple[str, str]] = {}
        for path, (ctype, body, etag) in list(self._files.items()):
            if ctype.startswith("text/html") and path.count("/") > 3:
                feed = path.split("/")[1]
                part = parts.setdefault(feed, template_parts(feed, self._kib))
                self._files[path] = (ctype, realistic(body.decode("utf-8"), part).encode("utf-8"), etag)


# -- the archive ---------------------------------------------------------------------------------

def archive_records(articles: list[dict], kib: int, stats: dict[str, int]) -> Iterator[Record]:
    """A request and a response per article page, outlet by outlet (only one outlet rendered at a time)."""
    by_feed: dict[str, list[dict]] = {}
    for article in articles:
        by_feed.setdefault(article["feed"], []).append(article)
    for feed, group in by_feed.items():
        parts = template_parts(feed, kib)
        with tempfile.TemporaryDirectory(prefix="monitor-bench-warc-") as tmp:
            render_site(group, Path(tmp), BASE)
            for article in group:
                page = Path(tmp, feed, *article["path"].strip("/").split("/"), "index.html")
                body = realistic(page.read_text(encoding="utf-8"), parts).encode("utf-8")
                url = f"{BASE}/{feed}{article['path']}/"
                stats["pages"] += 1
                stats["bytes"] += len(body)
                yield OtherRecord(url, "request", f"GET {article['path']}/ HTTP/1.1\r\nHost: news.example\r\n\r\n".encode(),
                                  "application/http; msgtype=request")
                yield ArchivedResponse(url, body, date=datetime.fromisoformat(article["published"]))


@dataclass(frozen=True)
class IngestRun:
    wall_seconds: float
    summary: str
    pages_per_second: float | None     # as the monitor's summary line reports it
    peak_pss_mib: float
    max_rss_mib: float


def run_ingest(config: Path, warc: Path) -> IngestRun:
    run = run_monitor(config, "ingest", "warc", str(warc))
    summary = run.out.strip().splitlines()[-1]
    found = re.search(r"pages \(([0-9.]+)/s\)", summary)
    return IngestRun(run.wall_seconds, summary, float(found.group(1)) if found else None, run.peak_pss_mib, run.max_rss_mib)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--page-kib", type=int, default=90, help="the size a page is brought to (KiB)")
    parser.add_argument("--poll-pages", type=int, default=2_000, help="pages of the polling pass compared with")
    parser.add_argument("--workers", type=int, default=0, help="extract.workers (0 = one per core)")
    parser.add_argument("--database", help="database URL (an empty database); default: SQLite in a temporary folder")
    args = parser.parse_args(argv)

    per_feed = 100
    articles = generate_articles(max(1, args.pages // per_feed), per_feed)[: args.pages]
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        folder = Path(tmp)
        warc = folder / "news.warc.gz"
        stats = {"pages": 0, "bytes": 0}
        started = time.monotonic()
        with open(warc, "wb") as fh:
            write_records(fh, archive_records(articles, args.page_kib, stats), gzip=True)
        print(f"archive: {stats['pages']} pages ({stats['bytes'] / stats['pages'] / 1024:.1f} KiB of HTML on average, "
              f"{stats['bytes'] / 2**20:.0f} MiB), {warc.stat().st_size / 2**20:.0f} MiB gzipped, written in "
              f"{time.monotonic() - started:.1f}s")
        (folder / "ingest").mkdir()
        config = write_config(folder / "ingest", [], database=args.database, workers=args.workers, concurrency=16)
        run = run_ingest(config, warc)
        print(f"monitor ingest: {run.summary}")
        ingest_rate = stats["pages"] / run.wall_seconds
        print(f"ingest: {ingest_rate:.1f} pages/s over the whole command ({run.wall_seconds:.1f}s), "
              f"{run.pages_per_second} pages/s as the monitor reports it")
        print(f"ingest peak memory: {run.peak_pss_mib:.0f} MiB PSS summed over the process tree; largest single "
              f"process ru_maxrss {run.max_rss_mib:.0f} MiB")

        poll_articles = articles[: args.poll_pages]
        web = RealSizeWeb(poll_articles, args.page_kib)
        try:
            (folder / "poll").mkdir()
            poll_config = write_config(folder / "poll", web.feed_urls, database=None, workers=args.workers,
                                       concurrency=16)
            poll = run_pass(poll_config)
        finally:
            web.close()
        poll_rate = len(poll_articles) / poll.wall_seconds
        print(f"polling pass over {len(poll_articles)} of the same pages: {poll.summary}")
        print(f"polling: {poll_rate:.1f} pages/s over the whole command ({poll.wall_seconds:.1f}s)"
              + (f", {len(poll_articles) / poll.pass_seconds:.1f} pages/s over the pass" if poll.pass_seconds else ""))
    speed_ok = ingest_rate >= poll_rate
    if run.pages_per_second and poll.pass_seconds:
        # Without the start-up of each command (imports, worker pool), which a smaller run pays more of.
        inner = len(poll_articles) / poll.pass_seconds
        print(f"speed without start-up: ingest {run.pages_per_second:.1f} pages/s vs polling pass {inner:.1f} pages/s"
              f" = {run.pages_per_second / inner:.2f}x")
    memory_ok = run.peak_pss_mib <= MEMORY_TARGET_MIB
    print(f"speed: ingest {ingest_rate:.1f} pages/s vs polling {poll_rate:.1f} pages/s = "
          f"{ingest_rate / poll_rate:.2f}x; target >= 1.00x: {'holds' if speed_ok else 'DOES NOT HOLD'}")
    print(f"memory: peak {run.peak_pss_mib:.0f} MiB; target <= {MEMORY_TARGET_MIB} MiB: "
          f"{'holds' if memory_ok else 'DOES NOT HOLD'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
