"""One ordered, bounded parallel map for every stage: results in input order, memory bounded by a window.

Stages call :func:`ordered_map` with their per-item function; it runs inline for one worker, on a thread pool of
``workers`` threads otherwise, or on a pool the caller made (e.g. a process pool whose workers were initialised
with a detector). The output never depends on the worker count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    pool: Executor | None = None,
    window: int | None = None,
    thread_name_prefix: str = "",
) -> Iterator[R]:
    """``map(fn, items)`` with at most ``window`` (default ``4 * workers``) items in flight, results in input order.

    Without ``pool``: inline when ``workers <= 1``, else on a thread pool this generator owns (shut down when the
    generator finishes or is closed). With ``pool``: submitted there; the caller owns (and shuts down) the pool."""
    workers = max(1, int(workers))
    if pool is None and workers == 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    own = pool is None
    executor = ThreadPoolExecutor(workers, thread_name_prefix=thread_name_prefix) if own else pool
    assert executor is not None
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(executor.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
