"""The optional parts of the monitor and the extra that installs each (pyproject's optional-dependencies).

The default install carries them too (pyproject's dependencies), so `pip install -e .` gives every
command. They are imported only where needed: `monitor run`, `report` and the rest work without
them, and `monitor serve` or a PostgreSQL database, where one is missing (an install that left it
out), stop with one line naming the command that installs it.
"""
from __future__ import annotations

import importlib

from monitor.exceptions import MissingExtraError

# The modules each extra provides, as imported (python-multipart is imported as `python_multipart`).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "pydantic", "fastapi_offline", "python_multipart"),
    "postgres": ("psycopg",),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here (empty: the extra is installed)."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def require_extra(extra: str, needed_by: str) -> None:
    """Raise MissingExtraError, saying what to install, unless every module of `extra` imports."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(extra, needed_by, missing)
