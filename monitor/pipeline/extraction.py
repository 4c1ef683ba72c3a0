"""The extraction pool: the worker processes pages are extracted in, shared by every pass of a pipeline.

Extraction is the dominant CPU cost, and runs in processes rather than threads because a process
can be ended: a page whose extraction outlasts `extract.timeout` is given up by its pass, which
then replaces the pool (`replace`). Each pool the room starts is one *generation*; a pass that
finds one of its extractions failed because another pass replaced the pool on purpose submits it
again, as it was never its own page's fault (`ended_on_purpose`). Workers end with the process
they work for, even when it is killed with SIGKILL (monitor.lifeline).
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess

from monitor._types import ExtractedPage, FetchResult
from monitor.lifeline import follow

log = logging.getLogger("monitor.pipeline")

# How long closing the pipeline waits for the last pool's manager thread to wind down.
_MANAGER_JOIN_SECONDS = 10


class ExtractionPool:
    """A process pool started on first use and replaced when broken or stuck; safe to share
    between threads."""

    def __init__(self, workers: int, max_page_bytes: int) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_page_bytes = max_page_bytes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0
        self._ended_on_purpose: set[int] = set()
        # The current pool's unfinished tasks, whichever pass they are of, in the order submitted,
        # with when each was first seen running.
        self._started: dict[Future[ExtractedPage], float | None] = {}

    def submit(self, fetched: FetchResult) -> tuple[Future[ExtractedPage], int]:
        """Extract `fetched` in a worker: the future of its page, and the generation of the pool it went to."""
        from monitor.extract import extract_page  # lxml: not needed by a pass that stores nothing

        def submit(pool: ProcessPoolExecutor) -> Future[ExtractedPage]:
            fut = pool.submit(extract_page, fetched.body, url=fetched.final_url, encoding=charset(fetched),
                              max_bytes=self.max_page_bytes)
            with self._lock:
                if pool is self._pool:
                    self._started[fut] = None
            fut.add_done_callback(self._forget)
            return fut

        pool, generation = self._current()
        try:
            return submit(pool), generation
        except BrokenProcessPool:
            # A worker died and took the pool with it: the next pages get a new one.
            log.warning("an extraction worker died; starting new ones")
            self._end(generation, on_purpose=False)
            pool, generation = self._current()
            return submit(pool), generation

    def prepare(self) -> None:
        """Start, in the background, the server the workers are forked from: it loads the
        extraction modules (about a second of CPU) while this process fetches the first pages,
        instead of while the first page waits for a worker (one core idle). Returns at once."""
        _forkserver_context()
        multiprocessing.forkserver.ensure_running()

    def replace(self, generation: int) -> None:
        """End the pool of `generation` now, whatever its workers are doing (a stuck page), unless
        it was replaced already; the next submit starts a new one."""
        self._end(generation, on_purpose=True)

    def overdue(self, limit: float) -> list[Future[ExtractedPage]]:
        """The tasks running for more than `limit` seconds, the longest-running first.

        The pool marks a task running when it queues it for a worker, one task ahead of the
        workers, and hands tasks out in order: only the earliest unfinished ones can be running,
        and only the earliest `workers` of those can be the stuck ones. That order is the pool's,
        across every pass using it, so it is kept here.
        """
        now = time.monotonic()
        found: list[tuple[float, Future[ExtractedPage]]] = []
        with self._lock:
            looked_at = 0
            for fut, since in self._started.items():
                if fut.done():
                    continue
                if since is None and fut.running():
                    since = self._started[fut] = now
                if since is not None and now - since > limit:
                    found.append((since, fut))
                looked_at += 1
                if looked_at > self.workers + 1:
                    break
        found.sort(key=lambda pair: pair[0])
        return [fut for _since, fut in found[:self.workers]]

    def ended_on_purpose(self, generation: int) -> bool:
        """Whether the pool of `generation` was ended by `replace` (not by a worker dying)."""
        with self._lock:
            return generation in self._ended_on_purpose

    def processes(self) -> list[BaseProcess]:
        """The worker processes of the current pool (none before the first page)."""
        with self._lock:
            return _processes(self._pool) if self._pool is not None else []

    def close(self) -> None:
        """End the workers now, for good (the pipeline is closing)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._started.clear()
        if pool is None:
            return
        manager = _terminate(pool)
        # Let the pool's manager thread finish closing its wake-up pipe now (it does once the
        # workers are gone): at interpreter exit, Python 3.11 wakes every such thread, and one
        # still closing its pipe at that moment prints a traceback ("Bad file descriptor") after
        # a clean run. Only here: a pool replaced mid-pass (`replace`) must not hold the pass up.
        if manager is not None:
            manager.join(timeout=_MANAGER_JOIN_SECONDS)

    def _forget(self, fut: Future[ExtractedPage]) -> None:
        with self._lock:
            self._started.pop(fut, None)

    def _current(self) -> tuple[ProcessPoolExecutor, int]:
        """The pool, started on first use (also for one worker: a process stuck on a
        pathological page can be ended, a thread could not), and its generation."""
        with self._lock:
            if self._pool is None:
                # forkserver: workers fork from a clean server that has trafilatura imported once,
                # never from this process with its fetcher threads and open database connections.
                ctx = _forkserver_context()
                # Each worker ends with this process, even when it is killed with SIGKILL (it never
                # gets to close the pool); the forkserver and resource tracker then end too.
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                 initializer=follow, initargs=(os.getpid(),))
                self._generation += 1
            return self._pool, self._generation

    def _end(self, generation: int, *, on_purpose: bool) -> None:
        with self._lock:
            if self._pool is None or generation != self._generation:
                return          # ended already (by another pass)
            pool, self._pool = self._pool, None
            self._started.clear()
            if on_purpose:
                self._ended_on_purpose.add(generation)
        _terminate(pool)


def _forkserver_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver start method, its server told to load the extraction modules before it forks
    any worker (they take effect when the server starts: once a process)."""
    from monitor.extract import EXTRACTION_MODULES

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(EXTRACTION_MODULES))
    return ctx


def charset(fetched: FetchResult) -> str | None:
    """The charset of the Content-Type header, if the server named one."""
    for param in fetched.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"\'')
    return None


def _processes(pool: ProcessPoolExecutor) -> list[BaseProcess]:
    # ProcessPoolExecutor has no public way to reach its workers before Python 3.14; its
    # `_processes` map is read defensively, and a pool without it is merely shut down.
    return list((getattr(pool, "_processes", None) or {}).values())


def _terminate(pool: ProcessPoolExecutor) -> threading.Thread | None:
    """End `pool` and its worker processes now, whatever they are doing, without waiting: the
    pool's manager thread, which winds down on its own once the workers are gone (None if it
    never started)."""
    processes = _processes(pool)
    # Read before shutdown, which forgets it.
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    return manager if isinstance(manager, threading.Thread) else None
