"""The extraction pool's ending of a pool: a stuck pool replaced mid-pass never holds the pass up
waiting for the old pool's manager thread; closing the pipeline does wait for it (a bounded wait),
so that no manager thread is still closing its pipes when the interpreter exits."""
from __future__ import annotations

import gc
import threading
from concurrent.futures import Future

from monitor._types import ExtractedPage, FetchResult
from monitor.pipeline import extraction
from monitor.pipeline.extraction import ExtractionPool

# A page whose extraction takes a worker a while (a long table), so that it is still in flight
# when the pool is ended.
SLOW_PAGE = (b"<html><body><article><h1>Slow</h1><p>" + b"Slow but sound text. " * 40 + b"</p><table>"
             + b"<tr><td>a</td><td>b b b b</td></tr>" * 20_000 + b"</table></article></body></html>")


def _slow_page() -> FetchResult:
    return FetchResult(url="http://127.0.0.1/slow", final_url="http://127.0.0.1/slow", status=200,
                       headers={"content-type": "text/html"}, body=SLOW_PAGE)


def _in_flight(pool: ExtractionPool) -> tuple[Future[ExtractedPage], int, threading.Thread]:
    """A slow page handed to `pool`, once it is with the workers; its generation; the pool's manager thread."""
    fut, generation = pool.submit(_slow_page())
    running = threading.Event()
    while not fut.running() and not fut.done():
        running.wait(0.01)
    assert fut.running(), "the page should still be in flight"
    manager = pool._pool._executor_manager_thread if pool._pool is not None else None
    assert isinstance(manager, threading.Thread)
    return fut, generation, manager


def test_replacing_a_stuck_pool_does_not_wait_for_its_manager_thread() -> None:
    """The old pool's manager thread is held (a done-callback of the page in flight waits until
    `replace` has returned); `replace` returns all the same. Were it to wait for that thread, the
    callback would give up waiting first (it waits for less than closing would) and say so."""
    pool = ExtractionPool(1, len(SLOW_PAGE) + 1)
    replaced = threading.Event()
    seen: list[bool] = []
    try:
        fut, generation, manager = _in_flight(pool)

        def hold_the_manager(_fut: Future[ExtractedPage]) -> None:
            # Runs in the old pool's manager thread, as it fails the page in flight.
            seen.append(replaced.wait(timeout=extraction._MANAGER_JOIN_SECONDS / 2))

        fut.add_done_callback(hold_the_manager)
        pool.replace(generation)
        replaced.set()
        manager.join(timeout=60)
        assert not manager.is_alive()
    finally:
        pool.close()
    assert seen == [True], "replace waited for the old pool's manager thread"
    assert fut.cancelled() or fut.exception() is not None


def test_closing_waits_for_the_manager_thread() -> None:
    """Closing the pool (the pipeline's close, at the end of `run --once`) returns only once the
    pool's manager thread has finished, even when something holds it for a moment."""
    pool = ExtractionPool(1, len(SLOW_PAGE) + 1)
    released = threading.Event()
    fut, _generation, manager = _in_flight(pool)
    fut.add_done_callback(lambda _fut: released.wait(timeout=0.5))
    pool.close()
    assert not manager.is_alive()
    assert pool.processes() == []


def test_workers_start_with_what_their_server_loaded_frozen() -> None:
    """The server the workers fork from freezes the modules and the language model it loaded, so
    that a worker's garbage collections leave those objects (and the memory the worker shares
    with the server) untouched."""
    pool = ExtractionPool(1, 1024)
    try:
        executor, _generation = pool._current()
        frozen = executor.submit(gc.get_freeze_count).result(timeout=120)
    finally:
        pool.close()
    assert frozen > 10_000, f"only {frozen} objects frozen in the worker"
