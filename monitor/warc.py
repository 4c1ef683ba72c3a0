"""Reading web archives: the HTML responses of a WARC file (.warc or .warc.gz), as fetched pages.

    counts = WarcCounts()
    for record in read_warc(path, start=0, max_bytes=5 << 20, counts=counts):
        record.page          # an ArchivedPage (URL, headers, capture date, bytes), or None: skipped
        record.end           # where the next record starts: resume from here

The reader is warcio (see docs/history.md for why not FastWARC). It streams: one record's
payload at a time, never more than `max_bytes` of it, so a file of any size reads in bounded
memory. Nothing in a file is fatal. Records that are not HTML responses, are larger than the
cap, or end early are counted and skipped; a gzip member or record that cannot be parsed is
counted, and reading goes on at the next record start found after it.
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from monitor._types import FetchResult

log = logging.getLogger("monitor.warc")

PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# What a feed is served as; an archive that crawled a site's feeds holds their entries' metadata.
FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
                        "text/xml", "application/feed+xml"})
# A record's own headers (WARC and HTTP) on top of its payload: a record longer than the page
# cap plus this cannot hold an acceptable page, and is skipped without reading its payload.
_HEADROOM = 256 * 1024
_SCAN_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True, slots=True)
class ArchivedPage:
    """An HTML response as the archive captured it."""

    record_id: str
    fetched: FetchResult          # url = final_url = the record's target URI; date = WARC-Date


@dataclass(frozen=True, slots=True)
class WarcRecord:
    page: ArchivedPage | None     # None: the record was counted and skipped
    start: int                    # offset of the record (its gzip member) in the file
    end: int                      # offset of what follows it


@dataclass
class WarcCounts:
    """What reading found, record by record (every record lands in exactly one count)."""

    records: int = 0
    pages: int = 0                # HTML responses handed on
    not_html: int = 0             # responses that are not a 200 HTML page (redirects, images, scripts, ...)
    other_records: int = 0        # requests, metadata, warcinfo, revisits, ...
    too_large: int = 0            # over the page cap: skipped without being loaded
    out_of_window: int = 0        # captured outside --since/--until
    truncated: int = 0            # payload ended before its declared length
    broken: int = 0               # unreadable stretches (bad gzip member, garbled record): skipped

    def add(self, other: WarcCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def clear(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)

    def skipped(self) -> str:
        parts = [(self.not_html, "not HTML"), (self.other_records, "not responses"), (self.too_large, "too large"),
                 (self.out_of_window, "outside the window"), (self.truncated, "truncated"),
                 (self.broken, "broken")]
        return ", ".join(f"{n} {what}" for n, what in parts if n) or "none"


def read_warc(path: Path, *, start: int = 0, max_bytes: int, counts: WarcCounts,
              since: datetime | None = None, until: datetime | None = None,
              types: frozenset[str] = PAGE_TYPES) -> Iterator[WarcRecord]:
    """The records of the WARC file `path` from offset `start` (a record boundary), in order; those
    that are 200 responses of one of `types` (HTML pages by default) carry their page."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC[:2]
        pos = start
        while True:
            fh.seek(pos)
            try:
                for record in _records(fh, pos, max_bytes, counts, since, until, types):
                    # Inside garbled data warcio's offsets may point back, even below 0: never go back.
                    pos = max(pos, record.end)
                    yield record
                return
            except _Broken as e:
                counts.broken += 1
                resume = _next_record_start(fh, max(e.at, pos) + 1, gzipped)
                log.warning("%s: unreadable data at offset %d (%s); %s", path, e.at, _printable(e.reason),
                            f"going on at offset {resume}" if resume is not None else "nothing readable after it")
                if resume is None:
                    return
                pos = resume


class _Broken(Exception):
    def __init__(self, at: int, reason: str) -> None:
        super().__init__(reason)
        self.at, self.reason = at, reason


def _records(fh: BinaryIO, pos: int, max_bytes: int, counts: WarcCounts,
             since: datetime | None, until: datetime | None, types: frozenset[str]) -> Iterator[WarcRecord]:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    start = pos
    try:
        records = ArchiveIterator(fh, check_digests=False)
        for record in records:
            page = _page(record, max_bytes, counts, since, until, types)
            records.read_to_end(record)
            start = records.get_record_offset()
            end = start + records.get_record_length()
            if end <= start:
                # Garbled lengths can make warcio's offsets point back: nothing here can be trusted.
                raise _Broken(start, f"the record's length points back to offset {end}")
            counts.records += 1
            counts.pages += page is not None
            yield WarcRecord(page, start, end)
            start = end
    except _Truncated:
        # The data ran out inside the record: the file ends there (cut short, or still being written).
        counts.records += 1
        counts.truncated += 1
        log.warning("%s: the file ends inside the record at offset %d; it is skipped", fh.name, start)
    except _Broken:
        raise
    except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as e:
        raise _Broken(start, f"{type(e).__name__}: {str(e)[:120]}") from None
    except Exception as e:    # the file is hostile input: whatever a garbled record makes warcio raise
        log.debug("unexpected error reading at offset %d", start, exc_info=True)
        raise _Broken(start, f"{type(e).__name__}: {str(e)[:120]}") from None


class _Truncated(Exception):
    pass


def _page(record: object, max_bytes: int, counts: WarcCounts,
          since: datetime | None, until: datetime | None, types: frozenset[str]) -> ArchivedPage | None:
    """The record as a page of one of `types`, or None once counted as skipped."""
    headers = record.rec_headers    # type: ignore[attr-defined]
    if record.rec_type != "response" or record.http_headers is None:    # type: ignore[attr-defined]
        counts.other_records += 1
        return None
    if (record.length or 0) > max_bytes + _HEADROOM:    # type: ignore[attr-defined]
        counts.too_large += 1
        return None
    http = record.http_headers    # type: ignore[attr-defined]
    status = int(http.get_statuscode() or 0) if str(http.get_statuscode() or "").isdigit() else 0
    fields = {name.lower(): value for name, value in http.headers}
    content_type = fields.get("content-type", "").split(";")[0].strip().lower()
    if status != 200 or content_type not in types:
        counts.not_html += 1
        return None
    date = parse_warc_date(headers.get_header("WARC-Date") or "")
    if (since is not None or until is not None) and (
            date is None or (since is not None and date < since) or (until is not None and date >= until)):
        counts.out_of_window += 1
        return None
    raw = record.raw_stream    # type: ignore[attr-defined]
    body = record.content_stream().read(max_bytes + 1)    # type: ignore[attr-defined]
    if len(body) > max_bytes:
        counts.too_large += 1
        return None
    if getattr(raw, "limit", 0) > 0 and not raw.read(1):
        raise _Truncated()
    url = headers.get_header("WARC-Target-URI") or ""
    record_id = headers.get_header("WARC-Record-ID") or f"{url} {headers.get_header('WARC-Date')}"
    # The payload is decoded (chunks joined, gzip undone): the headers must no longer say otherwise.
    for name in ("content-encoding", "transfer-encoding", "content-length"):
        fields.pop(name, None)
    return ArchivedPage(record_id, FetchResult(url=url, final_url=url, status=200, headers=fields, body=body,
                                               date=date))


def parse_warc_date(text: str) -> datetime | None:
    """WARC-Date (ISO 8601, UTC, e.g. 2018-06-12T10:00:00Z) as an aware datetime, or None."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _next_record_start(fh: BinaryIO, after: int, gzipped: bool) -> int | None:
    """The offset of the first readable record start at or after `after`, or None."""
    marker = _GZIP_MAGIC if gzipped else b"WARC/1."
    pos = after
    while True:
        fh.seek(pos)
        chunk = fh.read(_SCAN_CHUNK + len(marker))
        if len(chunk) < len(marker):
            return None
        i = chunk.find(marker)
        while 0 <= i < _SCAN_CHUNK:
            if _record_starts_at(fh, pos + i, gzipped):
                return pos + i
            i = chunk.find(marker, i + 1)
        pos += _SCAN_CHUNK


def _record_starts_at(fh: BinaryIO, offset: int, gzipped: bool) -> bool:
    fh.seek(offset)
    head = fh.read(64 * 1024)
    if gzipped:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 16)
        except zlib.error:
            return False
    return head.startswith((b"WARC/1.0\r\n", b"WARC/1.1\r\n", b"WARC/1.0\n", b"WARC/1.1\n"))


def _printable(text: str) -> str:
    """`text` fit for a log line: a garbled record's bytes become '?'."""
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
