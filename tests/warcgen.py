"""WARC files for tests and benchmarks, written with warcio (the library `monitor ingest warc` reads with).

    pages = crawl([article_url(site.base_url, a) for a in articles])   # real HTTP on 127.0.0.1
    write_warc(tmp_path / "site.warc.gz", pages)

A page is an `ArchivedResponse`; `write_warc` also takes extra records (requests, metadata) as
`OtherRecord`s, in order, so a test can mix what real crawls hold.
"""
from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


@dataclass(frozen=True)
class ArchivedResponse:
    url: str
    body: bytes
    headers: Sequence[tuple[str, str]] = (("Content-Type", "text/html; charset=utf-8"),)
    status: str = "200 OK"
    date: datetime | None = None          # WARC-Date; None = the writing time


@dataclass(frozen=True)
class OtherRecord:
    url: str
    record_type: str                      # "request", "metadata", "resource", ...
    body: bytes = b""
    content_type: str = "application/warc-fields"


Record = ArchivedResponse | OtherRecord


def crawl(urls: Iterable[str], *, date: datetime | None = None) -> list[ArchivedResponse]:
    """Fetch `urls` (a local test site) as a crawler would, and keep what the server answered."""
    pages = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in ("content-length", "date")]
            pages.append(ArchivedResponse(response.url, body, tuple(headers), f"{response.status} OK", date))
    return pages


def write_warc(path: Path, records: Iterable[Record], *, gzip: bool | None = None) -> Path:
    """Write `records` to `path` (gzipped, one member a record, when the name ends in .gz)."""
    with open(path, "wb") as fh:
        write_records(fh, records, gzip=path.name.endswith(".gz") if gzip is None else gzip)
    return path


def write_records(fh: BinaryIO, records: Iterable[Record], *, gzip: bool) -> None:
    writer = WARCWriter(fh, gzip=gzip)
    for r in records:
        if isinstance(r, ArchivedResponse):
            http = StatusAndHeaders(r.status, list(r.headers) + [("Content-Length", str(len(r.body)))],
                                    protocol="HTTP/1.1")
            warc_headers = {"WARC-Date": _warc_date(r.date)} if r.date else None
            record = writer.create_warc_record(r.url, "response", payload=io.BytesIO(r.body), http_headers=http,
                                               warc_headers_dict=warc_headers)
        else:
            record = writer.create_warc_record(r.url, r.record_type, payload=io.BytesIO(r.body),
                                               warc_content_type=r.content_type)
        writer.write_record(record)


def _warc_date(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
