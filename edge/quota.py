"""The spool's disk quota: room for a new raw candidate, made by eviction only if the driver allowed
it, and every eviction and pause recorded so that `edge status` can say so."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.livespool import LiveSpool
from edge.spool import SpoolError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
KEYFRAME_SCAN_S = 2.0  # keyframe files are counted at most this often (a scan stats every file)
PAUSED = "capture_paused"


@dataclass(frozen=True)
class Quota:
    """How much the spool may hold (None: no limit but the disk) and whether to evict."""

    limit_bytes: int | None = None
    allow_evict: bool = False

    @classmethod
    def from_mb(cls, quota_mb: float, *, allow_evict: bool) -> Quota:
        return cls(round(quota_mb * MIB) if quota_mb > 0 else None, allow_evict)


class InFlight:
    """The raw candidates the privacy stage is working on: never evicted under its feet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: frozenset[int] = frozenset()

    def set(self, candidate_ids: Iterable[int]) -> None:
        with self._lock:
            self._ids = frozenset(candidate_ids)

    def get(self) -> frozenset[int]:
        with self._lock:
            return self._ids


class SpaceKeeper:
    """Checks the quota before each raw candidate is stored (on the capture thread)."""

    def __init__(self, spool: LiveSpool, quota: Quota, in_flight: InFlight | None = None) -> None:
        self.spool = spool
        self.quota = quota
        self.in_flight = in_flight or InFlight()
        self.evictions = 0
        self._keyframe_bytes = 0
        self._scanned_at = -KEYFRAME_SCAN_S

    def usage_bytes(self) -> int:
        """Queued raw frames, keyframe files and the database."""
        if time.monotonic() - self._scanned_at >= KEYFRAME_SCAN_S:
            self._keyframe_bytes = _folder_bytes(self.spool.frames_dir)
            self._scanned_at = time.monotonic()
        database = sum(
            _size(self.spool.root / name)
            for name in ("spool.sqlite3", "spool.sqlite3-wal", "spool.sqlite3-shm")
        )
        return self.spool.queued_bytes() + self._keyframe_bytes + database

    def make_room(self, need_bytes: int) -> str | None:
        """None if `need_bytes` more fit (evicting first where allowed), else why not."""
        limit = self.quota.limit_bytes
        if limit is None:
            return None
        while (used := self.usage_bytes()) + need_bytes > limit:
            if not (self.quota.allow_evict and self._evict_one()):
                return f"spool full ({used / MIB:.1f} of {limit / MIB:.1f} MB)"
        return None

    def _evict_one(self) -> bool:
        """Evict the oldest raw candidate, else the oldest unbatched keyframe; False if neither."""
        raw = self.spool.oldest_queued(skip=self.in_flight.get())
        if raw is not None and self.spool.settle(raw, "evicted", "spool full"):
            self._record(
                f"evicted raw candidate {raw.label} ({raw.size_bytes} bytes, taken "
                f"{raw.capture_time}) to make room"
            )
            return True
        keyframe = self.spool.evict_oldest_keyframe()
        if keyframe is None:
            return False
        record, size = keyframe
        self._keyframe_bytes = max(0, self._keyframe_bytes - size)
        self._record(
            f"evicted keyframe {record.frame_id[:12]} of {record.sequence_id} ({size} bytes, "
            f"taken {record.capture_time}) to make room"
        )
        return True

    def _record(self, message: str) -> None:
        self.evictions += 1
        self.spool.record_event("eviction", message)

    def pause(self, reason: str) -> None:
        """Capture stores no candidates: say so once (status shows it until capture resumes).
        On a full disk even that may fail; the log still says it."""
        if self.spool.get_value(PAUSED) is not None:
            return
        log.warning("capture paused: %s", reason)
        since = datetime.now(UTC).isoformat()
        try:
            self.spool.set_value(PAUSED, json.dumps({"since": since, "reason": reason}))
            self.spool.record_event("error", f"capture paused: {reason}")
        except SpoolError:
            log.exception("cannot record that capture paused")

    def resume(self) -> None:
        """A candidate was stored again."""
        if self.spool.get_value(PAUSED) is not None:
            self.spool.clear_value(PAUSED)
            self.spool.record_event("capture", "capture resumed")
            log.warning("capture resumed")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _folder_bytes(folder: Path) -> int:
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                total += entry.stat().st_size if entry.is_file() else 0
            except FileNotFoundError:  # uploaded and freed meanwhile
                continue
    return total
