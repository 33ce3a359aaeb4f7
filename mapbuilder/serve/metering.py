"""Usage added up in each process and written to the catalog about once a second.

Writing the catalog on every metered request made keyed requests cost one write each. Instead each
process adds its use up in memory, per key and UTC day, and writes it with one upsert per key and
day: every `usage_flush_s` (the app's lifespan runs the loop), at shutdown, and before
`GET /v1/account/usage` answers in that process. Another process's use shows there within its
flush interval.

What is at risk, for billing: a clean shutdown (SIGTERM, Ctrl-C) flushes, so nothing is lost.
A process killed outright (SIGKILL, power loss) loses what it served since its last flush: at most
one flush interval of its traffic, which is never billed (customers are not overcharged). A flush
that fails keeps its counts and is tried again. The only way to count twice is a flush whose
COMMIT reached the database while the connection broke before the answer came back: the counts
stay pending and are written again. Both are small against a day's metering; where every credit
must be exact, run the API with a short interval (`ROADSWARM_SERVE_USAGE_FLUSH_S`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ingest.db import Catalog
from mapbuilder.serve.usage import DAY_FORMAT, UsageDelta, add_usage

DAY_S = 86_400
Counts = list[int]  # tiles, frames, credits


class UsageMeter:
    """Per-process usage counters, flushed to the catalog as one upsert per key and day."""

    def __init__(self, catalog: Catalog, *, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self._clock = clock
        self._pending: dict[tuple[str, str], Counts] = {}
        self._lock = threading.Lock()
        # One flush at a time: a reader that flushes first must wait for one already writing,
        # or it could read the catalog before those counts are in.
        self._flushing = threading.Lock()
        self._day: tuple[int, str] = (-1, "")

    def add(self, key_id: str, *, tiles: int = 0, frames: int = 0, credits: int = 0) -> None:
        """Count use by a key now (memory only)."""
        day = self._today()
        with self._lock:
            counts = self._pending.setdefault((key_id, day), [0, 0, 0])
            counts[0] += tiles
            counts[1] += frames
            counts[2] += credits

    def pending(self) -> list[UsageDelta]:
        """What is counted but not yet written."""
        with self._lock:
            return _deltas(self._pending)

    def flush(self) -> int:
        """Write everything counted so far; how many key-days were written.

        When the write fails the counts stay pending (nothing lost) and the error is raised.
        """
        with self._flushing:
            with self._lock:
                taken, self._pending = self._pending, {}
            try:
                add_usage(self.catalog, _deltas(taken))
            except BaseException:
                self._restore(taken)
                raise
            return len(taken)

    def _restore(self, taken: dict[tuple[str, str], Counts]) -> None:
        with self._lock:
            for slot, counts in taken.items():
                kept = self._pending.setdefault(slot, [0, 0, 0])
                for index, count in enumerate(counts):
                    kept[index] += count

    def _today(self) -> str:
        """The UTC day, formatted once per day rather than on every request."""
        now = self._clock()
        number = int(now // DAY_S)
        if number != self._day[0]:
            self._day = (number, time.strftime(DAY_FORMAT, time.gmtime(now)))
        return self._day[1]


def _deltas(pending: dict[tuple[str, str], Counts]) -> list[UsageDelta]:
    return [UsageDelta(key_id, day, *counts) for (key_id, day), counts in pending.items()]
