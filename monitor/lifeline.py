"""Helper processes end with the process they work for, even when it is killed with SIGKILL.

An extraction worker blocks reading its task queue; if the daemon dies without closing the pool
(`kill -9`, the OOM killer), nothing ever tells it, and it keeps the multiprocessing forkserver
and resource tracker alive with it. `follow(pid)`, run in the worker at start, watches `pid` from
a thread and ends the worker the moment it exits. On Linux the worker also asks the kernel for
SIGKILL should its own parent (the forkserver) die first.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0       # where no pidfd is available: how often the watched process is looked at


def follow(pid: int) -> None:
    """End this process as soon as process `pid` has exited (from a daemon thread)."""
    _die_with_parent()
    try:
        handle: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):   # not Linux >= 5.3, or `pid` is already gone
        handle = None
        if not _exists(pid):
            os._exit(0)
    threading.Thread(target=_watch, args=(pid, handle), name=f"follow pid {pid}", daemon=True).start()


def _watch(pid: int, handle: int | None) -> None:
    if handle is not None:
        select.select([handle], [], [])          # readable once the process has exited
    else:
        while _exists(pid):
            threading.Event().wait(_POLL_SECONDS)
    # Whatever this process was doing is for a process that no longer exists.
    os._exit(0)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
