"""A few items worked on at once, on threads, with results handed back in the order items came.

`edge process` anonymizes keyframes this way: the detectors release the GIL, so whole frames on
separate threads keep every core busy, while the spool (one SQLite connection) is written only by
the calling thread, in capture order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class InOrder(Generic[Item, Result]):
    """Runs `work` on up to `workers` items at once; with one worker, on the calling thread."""

    def __init__(self, work: Callable[[Item], Result], workers: int) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(workers, "edge-work") if workers > 1 else None
        self._pending: deque[Future[Result]] = deque()
        # Twice the workers queued keeps each busy while the oldest result is collected, and
        # bounds the frames held in memory.
        self._ahead = 2 * workers

    def __enter__(self) -> InOrder[Item, Result]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def put(self, item: Item) -> list[Result]:
        """Start on `item`; returns the results that must be taken now, oldest first."""
        if self._pool is None:
            return [self._work(item)]
        self._pending.append(self._pool.submit(self._work, item))
        ready = []
        while len(self._pending) > self._ahead:
            ready.append(self._pending.popleft().result())
        return ready

    def finish(self) -> list[Result]:
        """Every result not yet taken, oldest first."""
        ready = [future.result() for future in self._pending]
        self._pending.clear()
        return ready
