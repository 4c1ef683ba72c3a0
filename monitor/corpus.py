"""Reading a labelled corpus (`monitor eval --corpus`): JSON lines, each checked before any is scored.

The format is documented in docs/eval-corpus.md. A bad row is a ConfigError naming the file
and the line, so that a typo in row 812 is found without reading a traceback.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.exceptions import ConfigError

LABELS = ("on", "brief", "off")
FORMAT_DOC = "docs/eval-corpus.md"


def read_corpus(path: Path) -> list[dict[str, Any]]:
    """Every row of the corpus at `path`; raises ConfigError at the first bad row, with file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"corpus file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the corpus: {e}", str(path)) from e
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"not a JSON object: {e} (the format: {FORMAT_DOC})", where) from None
        _check_row(row, where)
        if row["id"] in seen:
            raise ConfigError(f"id {row['id']!r} repeats line {seen[row['id']]}", where)
        seen[row["id"]] = number
        rows.append(row)
    if not rows:
        raise ConfigError(f"the corpus has no rows (the format: {FORMAT_DOC})", str(path))
    return rows


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise ConfigError(f"each line must be a JSON object, got {type(row).__name__} (the format: {FORMAT_DOC})", where)
    for key in ("id", "label"):
        if key not in row:
            raise ConfigError(f"missing key {key!r}; every row needs id and label (the format: {FORMAT_DOC})", where)
    if not isinstance(row["id"], str) or not row["id"].strip():
        raise ConfigError(f"id must be a non-empty string, got {row['id']!r}", where)
    if row["label"] not in LABELS:
        raise ConfigError(f"label must be one of {', '.join(LABELS)}, got {row['label']!r}", where)
    for key in ("title", "body", "summary", "lang", "outlet", "feed", "category"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ConfigError(f"{key} must be a string, got {row[key]!r}", where)
    published = row.get("published")
    if published:
        try:
            if not isinstance(published, str):
                raise ValueError
            datetime.fromisoformat(published)
        except ValueError:
            raise ConfigError(f"published must be an ISO 8601 date-time, got {published!r}", where) from None
