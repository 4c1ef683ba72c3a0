"""Progress of a long command: one status line rewritten in place on a terminal, nothing in a pipe.

A script reading the command's output (or a log collecting stderr) gets only the results; a person
watching a terminal sees what is being done. In a pipe the messages go to the debug log.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
from types import TracebackType
from typing import TextIO

log = logging.getLogger("monitor.progress")

_CLEAR_LINE = "\r\x1b[K"


class StatusLine:
    """Call it with a message to show; use it as a context manager to clear the line at the end."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = _is_terminal(self.stream) and os.environ.get("TERM") != "dumb"
        self._shown = False

    def __call__(self, message: str) -> None:
        if not self.live:
            log.debug("%s", message)
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        self.stream.write(_CLEAR_LINE + message.replace("\n", " ")[:width])
        self.stream.flush()
        self._shown = True

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._shown:
            self.stream.write(_CLEAR_LINE)
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
