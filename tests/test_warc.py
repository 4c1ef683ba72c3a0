"""`monitor ingest warc`: web archives through the pipeline a poll uses, with real processes and files.

A small news site is served on 127.0.0.1, crawled into a WARC with warcio, and the WARC ingested
by a real `monitor` process into a fresh database; the result is compared with polling the same
site. A run SIGKILLed mid-file and restarted must lose nothing and store nothing twice. Broken
archives (truncated, a corrupt gzip member, records that are not HTML pages, a 50 MiB record)
are counted and skipped, with exit status 0 and a summary line.
"""
from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sitegen import article_url, make_article, serve_articles
from sqlalchemy import text
from test_cli_e2e import dump_toml
from test_crash import count, reap, start
from warcgen import ArchivedResponse, OtherRecord, crawl, write_warc

from monitor.db.engine import make_engine

SUMMIT = "trump-kim-summit-2018"
DATA = Path(__file__).parent / "data" / "warc"


def write_config(folder: Path, db_url: str, feeds: list[str] = (), **extra: object) -> Path:
    cfg = {"database": {"url": db_url}, "fetch": {"allow_private_addresses": True}, "extract": {"workers": 2},
           "feeds": [{"url": u} for u in feeds], "stories": [{"id": SUMMIT}], **extra}
    path = folder / "monitor.toml"
    path.write_text(dump_toml(cfg), encoding="utf-8")
    return path


def monitor(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = start(config, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        reap(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def exported(config: Path) -> dict[str, dict]:
    result = monitor(config, "export", "articles")
    assert result.returncode == 0, result.stderr[-2000:]
    return {a["canonical_url"]: a for a in map(json.loads, result.stdout.splitlines())}


def report(config: Path, *args: str) -> dict:
    result = monitor(config, "report", "--format", "json", "--story", SUMMIT, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    [story] = json.loads(result.stdout)["stories"]
    return story


def summary_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith(("ingest done", "stopped"))]
    assert lines, f"no summary line; stdout {result.stdout!r}, stderr {result.stderr[-2000:]}"
    return lines[-1]


# --- the same decision as polling -------------------------------------------------------------

def test_an_archived_site_stores_the_text_and_matches_polling_stores(tmp_path: Path) -> None:
    (tmp_path / "poll").mkdir()
    (tmp_path / "warc").mkdir()
    with serve_articles(tmp_path) as (site, feed_urls):
        polled = write_config(tmp_path / "poll", f"sqlite:///{tmp_path / 'poll.db'}", feed_urls)
        result = monitor(polled, "run", "--once")
        assert result.returncode == 0, result.stderr[-2000:]
        # The pages the poll stored, crawled as an archive would hold them.
        pages = crawl(a["url"] for a in exported(polled).values())
    warc = write_warc(tmp_path / "site.warc.gz", pages)
    archived = write_config(tmp_path / "warc", f"sqlite:///{tmp_path / 'warc.db'}")
    result = monitor(archived, "ingest", "warc", str(warc))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(pages)} records, {len(pages)} pages" in summary_line(result)

    by_poll, by_warc = exported(polled), exported(archived)
    assert len(by_poll) >= 20 and by_warc.keys() == by_poll.keys()
    for url, a in by_poll.items():
        b = by_warc[url]
        for name in ("url", "title", "body", "summary", "published", "lang", "outlet", "source"):
            assert b[name] == a[name], f"{url}: {name} differs: polled {a[name]!r}, archived {b[name]!r}"
        # The author comes from the page, not the feed: the same names, maybe otherwise separated.
        assert re.split(r" ?[,;|] ", b["author"] or "") == re.split(r" ?[,;|] ", a["author"] or ""), (a["author"], b["author"])
        assert b["feed_url"] == "warc:site.warc.gz"

    poll_matches, warc_matches = report(polled)["matches"], report(archived)["matches"]
    assert poll_matches, "the demo site covers the summit: polling must find matches"
    # The page's description stands in for the feed's summary, so even the scores agree.
    assert ({m["canonical_url"]: (m["title"], m["score"], m["evidence"]) for m in warc_matches}
            == {m["canonical_url"]: (m["title"], m["score"], m["evidence"]) for m in poll_matches})
    assert {m["via"] for m in warc_matches} == {"warc:site.warc.gz"}
    assert all(m["via"].startswith("http://127.0.0.1") for m in poll_matches)

    # Ingesting the same file again reads nothing (the offset is at its end) and stores nothing.
    again = monitor(archived, "ingest", "warc", str(warc))
    assert again.returncode == 0 and "0 records, 0 pages" in summary_line(again) and "1 resumed" in summary_line(again)
    assert exported(archived).keys() == by_warc.keys()


def test_feeds_archived_with_their_pages_give_entries_their_summary_as_a_poll_does(tmp_path: Path) -> None:
    (tmp_path / "poll").mkdir()
    (tmp_path / "warc").mkdir()
    with serve_articles(tmp_path) as (site, feed_urls):
        polled = write_config(tmp_path / "poll", f"sqlite:///{tmp_path / 'poll.db'}", feed_urls)
        assert monitor(polled, "run", "--once").returncode == 0
        feeds = crawl(feed_urls)
        # Pages that say nothing of themselves: the summary is only in the feeds, as on many sites.
        pages = [replace(p, body=re.sub(rb'<meta name="description"[^>]*>|<script type="application/ld[+]json">.*?</script>', b"", p.body))
                 for p in crawl(a["url"] for a in exported(polled).values())]
    assert all(b'name="description"' not in p.body for p in pages)
    (tmp_path / "bare").mkdir()
    bare = write_config(tmp_path / "bare", f"sqlite:///{tmp_path / 'bare.db'}")
    assert monitor(bare, "ingest", "warc", str(write_warc(tmp_path / "pages.warc.gz", pages))).returncode == 0
    archived = write_config(tmp_path / "warc", f"sqlite:///{tmp_path / 'warc.db'}")
    # The feeds come last in the file: what matters is that the archive holds them.
    result = monitor(archived, "ingest", "warc", str(write_warc(tmp_path / "site.warc.gz", [*pages, *feeds])))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(feeds)} archived feeds give" in result.stderr

    by_poll, by_bare, by_warc = exported(polled), exported(bare), exported(archived)
    assert any(by_bare[url]["summary"] != a["summary"] for url, a in by_poll.items())    # without the feeds
    for url, a in by_poll.items():
        for name in ("title", "body", "summary", "published"):
            assert by_warc[url][name] == a[name], f"{url}: {name} differs"
    assert ({m["canonical_url"]: (m["score"], m["evidence"]) for m in report(archived)["matches"]}
            == {m["canonical_url"]: (m["score"], m["evidence"]) for m in report(polled)["matches"]})


def test_capture_dates_choose_records_and_date_the_articles(tmp_path: Path) -> None:
    articles = [make_article(f"d{i}", title=f"Harbour news {i}") for i in range(4)]
    with serve_articles(tmp_path, articles) as (site, _feeds):
        pages = crawl(article_url(site.base_url, a) for a in articles)
    dates = [datetime(2018, m, 10, 12, tzinfo=UTC) for m in (4, 5, 6, 7)]
    warc = write_warc(tmp_path / "dated.warc", [ArchivedResponse(p.url, p.body, p.headers, date=d)
                                                for p, d in zip(pages, dates)])
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    result = monitor(config, "ingest", "warc", str(warc), "--since", "2018-05-01", "--until", "2018-07-01")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 records, 2 pages" in summary_line(result) and "2 outside the window" in summary_line(result)
    stored = exported(config)
    assert sorted(a["fetched_at"] for a in stored.values()) == [d.isoformat() for d in dates[1:3]]

    bad = monitor(config, "ingest", "warc", str(warc), "--story", "no-such-story")
    assert bad.returncode == 2 and "no enabled story 'no-such-story'" in bad.stderr
    missing = monitor(config, "ingest", "warc", str(tmp_path / "nowhere.warc"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


# --- interrupted -------------------------------------------------------------------------------

PAGES = 600          # more than two of ingest's batches (256 pages)


def _many_articles() -> list[dict]:
    summit = ("President Donald Trump and North Korean leader Kim Jong Un met in Singapore on Tuesday. "
              "The summit ended with a joint statement on the denuclearization of the Korean peninsula.")
    return [make_article(f"k{i}", title=f"Singapore summit: Trump and Kim meet, report {i}" if i % 10 == 0
                         else f"Harbour works, report {i}",
                         body=(f"{summit}\n\n{summit} Report {i}." if i % 10 == 0
                               else f"The harbour works went on, report {i}.\n\nThe council met on the works again."))
            for i in range(PAGES)]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_mid_file_then_restart_loses_nothing_and_stores_nothing_twice(
        request: pytest.FixtureRequest, tmp_path: Path, db: str) -> None:
    articles = _many_articles()
    with serve_articles(tmp_path, articles) as (site, _feeds):
        pages = crawl(article_url(site.base_url, a) for a in articles)
    warc = write_warc(tmp_path / "many.warc.gz", pages)
    (tmp_path / "ref").mkdir()
    reference = write_config(tmp_path / "ref", f"sqlite:///{tmp_path / 'ref.db'}")
    assert monitor(reference, "ingest", "warc", str(warc)).returncode == 0

    db_url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_schema_url")
    config = write_config(tmp_path, db_url)
    engine = make_engine(db_url)
    try:
        proc = start(config, "ingest", "warc", str(warc))
        try:
            # Into the second batch: its first articles are stored, its offset is not.
            deadline = time.monotonic() + 120
            while count(engine, "articles") < 300:
                assert proc.poll() is None, f"ended early: {proc.communicate()[1][-3000:]}"
                assert time.monotonic() < deadline, "fewer than 300 articles after 120 s"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            reap(proc)
        stored_before = count(engine, "articles")
        with engine.connect() as conn:
            offset, records = conn.execute(text("SELECT next_offset, records FROM archive_files")).one()
        assert 300 <= stored_before < PAGES and 0 < offset < warc.stat().st_size and records < stored_before

        result = monitor(config, "ingest", "warc", str(warc))
        assert result.returncode == 0, result.stderr[-3000:]
        line = summary_line(result)
        assert "1 resumed" in line and f"{PAGES - records} records" in line, line
        assert f"{PAGES - stored_before} new articles" in line, line
        with engine.connect() as conn:
            urls = list(conn.execute(text("SELECT url FROM articles")).scalars())
            entries = conn.execute(text("SELECT count(*) FROM entries")).scalar_one()
            matched = conn.execute(text("SELECT count(*) FROM matches WHERE story_id = :s"), {"s": SUMMIT}).scalar_one()
            done = conn.execute(text("SELECT next_offset, records, pages FROM archive_files")).one()
        assert len(urls) == len(set(urls)) == PAGES and entries == PAGES
        assert done[1:] == (PAGES, PAGES)
        ref_matches = report(reference)["matches"]
        assert matched == len(ref_matches) >= PAGES // 10 - 5
        assert exported(config).keys() == exported(reference).keys()
        assert ({m["canonical_url"] for m in report(config)["matches"]}
                == {m["canonical_url"] for m in ref_matches})
    finally:
        engine.dispose()


# --- broken archives ---------------------------------------------------------------------------

def test_broken_archives_are_counted_and_skipped_never_fatal(tmp_path: Path) -> None:
    articles = [make_article(f"b{i}", title=f"Harbour news {i}") for i in range(9)]
    with serve_articles(tmp_path, articles) as (site, _feeds):
        pages = crawl(article_url(site.base_url, a) for a in articles)
        base = site.base_url

    # Cut short in the middle of its last record.
    whole = write_warc(tmp_path / "whole.warc.gz", pages[:3]).read_bytes()
    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(whole[: len(whole) - 200])
    # A corrupt gzip member between two good ones: the records after it are still read.
    members = [write_warc(tmp_path / f"m{i}.warc.gz", [p]).read_bytes() for i, p in enumerate(pages[3:6])]
    garbled = bytearray(members[1])
    garbled[40:80] = bytes(b ^ 0x5A for b in garbled[40:80])
    bad_member = tmp_path / "bad-member.warc.gz"
    bad_member.write_bytes(members[0] + bytes(garbled) + members[2])
    # Records that are not HTML pages, around one page.
    not_html = write_warc(tmp_path / "mixed.warc", [
        OtherRecord(f"{base}/robots.txt", "request", b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                    "application/http; msgtype=request"),
        ArchivedResponse(f"{base}/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(300), (("Content-Type", "image/png"),)),
        ArchivedResponse(f"{base}/old", b"", (("Location", "/new"), ("Content-Type", "text/html")),
                         status="301 Moved Permanently"),
        OtherRecord(f"{base}/b6", "metadata", b"outlinks: 3\r\n"),
        pages[6],
        ArchivedResponse(f"{base}/feed.xml", b"<rss/>", (("Content-Type", "application/rss+xml"),)),
    ])
    # A 50 MiB HTML record, then a page: the big one is skipped, not loaded, and the next one read.
    huge = ArchivedResponse(f"{base}/huge", b"<html><body><p>" + b"x" * (50 * 1024 * 1024) + b"</p></body></html>")
    big = write_warc(tmp_path / "big.warc.gz", [huge, pages[7]])
    # A truncated plain file: the last record ends early.
    plain = write_warc(tmp_path / "plain.warc", [pages[8], pages[0]]).read_bytes()
    cut_plain = tmp_path / "cut.warc"
    cut_plain.write_bytes(plain[: len(plain) - 300])

    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    files = [truncated, bad_member, not_html, big, cut_plain]
    result = monitor(config, "ingest", "warc", *map(str, files))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = summary_line(result)
    assert "5 files" in line, line
    skipped = dict((what, int(n)) for n, what in re.findall(r"(\d+) (not HTML|not responses|too large|truncated|"
                                                            r"broken)", line))
    assert skipped == {"not HTML": 3, "not responses": 2, "too large": 1, "truncated": 2, "broken": 1}, line
    stored = {a["title"] for a in exported(config).values()}
    # 0 and 1 before the cut (2 is not stored half), 3 and 5 around the bad member (4 is lost with
    # it), 6 among the other records, 7 after the huge one, 8 before the cut of the plain file.
    assert stored == {f"Harbour news {i}" for i in (0, 1, 3, 5, 6, 7, 8)}, stored


def test_a_gzip_bomb_in_a_page_is_capped(tmp_path: Path) -> None:
    """Content-Encoding: gzip that decodes past fetch.max_page_bytes is dropped at the cap."""
    bomb = gzip.compress(b"<html><body>" + b"a" * (20 * 1024 * 1024) + b"</body></html>")
    warc = write_warc(tmp_path / "bomb.warc.gz", [
        ArchivedResponse("http://127.0.0.1:9/bomb", bomb, (("Content-Type", "text/html"), ("Content-Encoding", "gzip")))])
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    result = monitor(config, "ingest", "warc", str(warc))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 too large" in summary_line(result) and "0 new articles" in summary_line(result)


# --- sitemaps and URL lists: the same decision, whatever the door -------------------------------

def _urlset(entries: list[tuple[str, str]]) -> str:
    urls = "".join(f"<url><loc>{u}</loc><news:news><news:publication_date>{d}</news:publication_date></news:news></url>"
                   for u, d in entries)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>')


def test_sitemaps_and_url_lists_store_what_polling_stores(tmp_path: Path) -> None:
    for name in ("poll", "sitemap", "urls"):
        (tmp_path / name).mkdir()
    with serve_articles(tmp_path) as (site, feed_urls):
        polled = write_config(tmp_path / "poll", f"sqlite:///{tmp_path / 'poll.db'}", feed_urls)
        assert monitor(polled, "run", "--once").returncode == 0
        by_poll = exported(polled)
        dated = sorted((a["url"], a["published"]) for a in by_poll.values())
        # An index of two news sitemaps, one of them gzipped, and a dead link the index also names.
        half = len(dated) // 2
        (site.root / "news-1.xml").write_text(_urlset(dated[:half]), encoding="utf-8")
        (site.root / "news-2.xml.gz").write_bytes(gzip.compress(_urlset(dated[half:]).encode()))
        (site.root / "sitemap.xml").write_text(
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<sitemap><loc>{site.base_url}/{n}</loc></sitemap>" for n in ("news-1.xml", "news-2.xml.gz",
                                                                                    "gone.xml"))
            + "</sitemapindex>", encoding="utf-8")
        by_sitemap_cfg = write_config(tmp_path / "sitemap", f"sqlite:///{tmp_path / 'sitemap.db'}")
        result = monitor(by_sitemap_cfg, "ingest", "sitemap", f"{site.base_url}/sitemap.xml")
        assert result.returncode == 0, result.stderr[-2000:]
        assert summary_line(result).startswith("ingest done") and f"3 sitemaps, {len(dated)} URLs" in result.stdout
        assert "1 sitemaps unreadable" in result.stdout, result.stdout

        # --since/--until on the publication dates: only June 2018.
        june = [u for u, d in dated if d.startswith("2018-06")]
        (tmp_path / "june").mkdir()
        june_cfg = write_config(tmp_path / "june", f"sqlite:///{tmp_path / 'june.db'}")
        result = monitor(june_cfg, "ingest", "sitemap", f"{site.base_url}/sitemap.xml", "--since", "2018-06-01",
                         "--until", "2018-07-01")
        assert result.returncode == 0 and 0 < len(june) < len(dated), result.stderr[-2000:]
        assert {a["url"] for a in exported(june_cfg).values()} == set(june)

        by_list_cfg = write_config(tmp_path / "urls", f"sqlite:///{tmp_path / 'urls.db'}")
        listing = "# the summit, by hand\n" + "".join(f"{u}\n" for u, _d in dated) + "not a url\n\n"
        listed = subprocess.run([sys.executable, "-m", "monitor", "--config", str(by_list_cfg), "ingest", "urls", "-"],
                                input=listing, capture_output=True, text=True, timeout=300)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert f"{len(dated)} URLs; skipped: 1 not http(s) URLs" in listed.stdout, listed.stdout
        again = subprocess.run([sys.executable, "-m", "monitor", "--config", str(by_list_cfg), "ingest", "urls", "-"],
                               input=listing, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "0 new articles, 0 pages failed" in again.stdout, again.stdout

    poll_matches = {m["canonical_url"]: m["score"] for m in report(polled)["matches"]}
    for config, origin in ((by_sitemap_cfg, f"sitemap:{site.base_url}/sitemap.xml"), (by_list_cfg, "urls:stdin")):
        stored = exported(config)
        assert stored.keys() == by_poll.keys()
        for url, a in by_poll.items():
            for name in ("title", "body", "summary", "published", "lang", "outlet"):
                assert stored[url][name] == a[name], f"{origin}: {url}: {name} differs"
            assert stored[url]["feed_url"] == origin
        assert {m["canonical_url"]: m["score"] for m in report(config)["matches"]} == poll_matches


@pytest.mark.parametrize("name", ["fuzz.warc.gz", "fuzz.warc"])
def test_the_reader_survives_garbled_archives(tmp_path: Path, name: str) -> None:
    """Bytes changed, cut, inserted or dropped anywhere: reading never raises, never goes back, and
    counts every record it reads once."""
    import random

    from monitor.warc import WarcCounts, read_warc

    pages = [ArchivedResponse(f"http://x.example/{i}", b"<html><body><p>page %d</p></body></html>" % i)
             for i in range(6)]
    written = {(p.url, p.body) for p in pages}
    original = write_warc(tmp_path / name, pages).read_bytes()
    rng = random.Random(name)
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            if not data:
                break
            i, kind = rng.randrange(len(data)), rng.random()
            if kind < 0.5:
                data[i] = rng.randrange(256)
            elif kind < 0.7:
                del data[i:i + rng.randint(1, 200)]
            elif kind < 0.85:
                data[i:i] = rng.randbytes(rng.randint(1, 50))
            else:
                del data[i:]
        mutated = tmp_path / f"mutated-{name}"
        mutated.write_bytes(bytes(data))
        counts = WarcCounts()
        records = list(read_warc(mutated, max_bytes=1 << 20, counts=counts))
        starts = [r.start for r in records]
        assert starts == sorted(set(starts)) and all(r.end > r.start for r in records)
        assert counts.records == len(records) + counts.truncated
        assert counts.pages == sum(r.page is not None for r in records) <= len(pages)
    # and the unharmed file gives back exactly what was written
    counts = WarcCounts()
    assert {(r.page.fetched.url, r.page.fetched.body) for r in read_warc(tmp_path / name, max_bytes=1 << 20,
                                                                          counts=counts)} == written


def test_garbled_data_whose_offsets_point_back_is_read_to_the_end(tmp_path: Path) -> None:
    """A mutated archive (kept from a fuzz run) on which warcio reports an offset behind the one
    reached: the reader used to resynchronise there and read the same stretch forever."""
    import threading

    from monitor.warc import WarcCounts, read_warc

    counts, found, failed = WarcCounts(), [], []

    def read() -> None:
        try:
            found.extend(read_warc(DATA / "offsets-point-back.warc.gz", max_bytes=1 << 20, counts=counts))
        except Exception as e:      # any exception is a failure of the reader too
            failed.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)      # a liveness bound for a loop, far above the few milliseconds the file takes
    assert not reader.is_alive(), "the reader went back and read the same stretch again and again"
    assert not failed, failed
    assert found and counts.broken >= 1 and counts.records >= len(found)


def test_a_record_whose_length_points_back_is_broken_data_not_a_record() -> None:
    """A mutated archive (kept from a fuzz run) where warcio reads a record at offset 350 whose
    garbled length ends it at 348: it used to be yielded with its end before its start, a resume
    point behind the record. It is counted as broken and reading goes on after it."""
    from monitor.warc import WarcCounts, read_warc

    counts = WarcCounts()
    records = list(read_warc(DATA / "length-points-back.warc.gz", max_bytes=1 << 20, counts=counts))
    assert records and all(r.end > r.start for r in records)
    assert [r.start for r in records] == sorted({r.start for r in records})
    assert counts.broken >= 1 and counts.records == len(records) + counts.truncated
