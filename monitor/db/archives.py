"""How far `monitor ingest warc` got in each archive file (the archive_files table).

The offset is written only after every record before it is stored, so a run killed at any
point resumes at the last such offset; the records it reads again are seen entries already
and store nothing twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from monitor.db import models as m
from monitor.db.store import Store


@dataclass(frozen=True, slots=True)
class ArchiveProgress:
    path: str
    fingerprint: str
    offset: int
    records: int
    pages: int


def load_progress(store: Store, path: str) -> ArchiveProgress | None:
    with store.transaction() as conn:
        row = conn.execute(select(m.ArchiveFile).where(m.ArchiveFile.path == path)).one_or_none()
    return None if row is None else ArchiveProgress(row.path, row.fingerprint, row.next_offset, row.records, row.pages)


def save_progress(store: Store, progress: ArchiveProgress, at: datetime) -> None:
    values = {"fingerprint": progress.fingerprint, "next_offset": progress.offset, "records": progress.records,
              "pages": progress.pages, "updated_at": at}
    insert = store.insert(m.ArchiveFile)
    stmt = insert.values(path=progress.path, **values).on_conflict_do_update(index_elements=["path"], set_=values)
    with store.transaction() as conn:
        conn.execute(stmt)
