"""The raw queue: keyframe candidates waiting, encrypted, for the privacy stage.

It lives in the spool (same SQLite file, its own tables, blobs under `raw/`), so capture can store
a candidate in milliseconds and never wait for the detectors. A blob is written (temp, fsync,
rename) before its row; a blob without a queued row is an orphan of a crash and is removed at
open. Rows stay as a ledger after their blob is gone (`done`, `dropped` with the reason, `evicted`),
keyed by (sequence, position), so a recording processed again after a crash queues nothing twice.

A candidate is released to the privacy stage only once it cannot fall into the last `trim_m` of
its trip: when the trip has gone `trim_m` beyond it, or has ended. A trip left open by a run that
died ends at the distance it had recorded, which can only drop more, never keep too much.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.spool import Spool, SpoolError
from edge.track import Pose

log = logging.getLogger(__name__)
RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_trips (
    sequence_id TEXT PRIMARY KEY,
    trim_m REAL NOT NULL,
    horizon REAL,
    travelled_m REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'ended')),
    started_at REAL NOT NULL,
    ended_at REAL
);
CREATE TABLE IF NOT EXISTS raw_candidates (
    id INTEGER PRIMARY KEY,
    sequence_id TEXT NOT NULL REFERENCES raw_trips (sequence_id),
    position INTEGER NOT NULL,
    source_frame INTEGER NOT NULL,
    travelled_m REAL NOT NULL,
    capture_time TEXT NOT NULL,
    pose TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'done', 'dropped', 'evicted')),
    reason TEXT,
    created_at REAL NOT NULL,
    UNIQUE (sequence_id, position)
);
CREATE INDEX IF NOT EXISTS raw_candidates_state ON raw_candidates (state, id);
"""
# Ledger rows of trips that ended this long ago are no longer needed to skip work after a crash.
LEDGER_KEEP_S = 86_400.0


def candidate_label(sequence_id: str, position: int) -> str:
    """What a candidate's sealed frame is bound to: its trip and its place in it."""
    return f"{sequence_id}#{position}"


@dataclass(frozen=True)
class NewCandidate:
    """What capture stores for a candidate besides its sealed frame: which keyframe of which trip
    it is, and where and when it was taken."""

    sequence_id: str
    position: int
    source_frame: int
    travelled_m: float
    capture_time: str
    pose: Pose

    @property
    def label(self) -> str:
        return candidate_label(self.sequence_id, self.position)


@dataclass(frozen=True)
class RawCandidate(NewCandidate):
    """A queued candidate: its row id and the size of its sealed frame."""

    id: int
    size_bytes: int


class RawSpool(Spool):
    """The spool with its raw queue. Open one `first` connection per process (it removes what a
    crash left); threads open further ones with `first=False`, so nobody deletes a file another
    thread is about to give a row."""

    def __init__(self, root: Path, *, first: bool = True) -> None:
        self._first = first
        super().__init__(root)
        self.raw_dir = root / "raw"
        try:
            self.raw_dir.mkdir(exist_ok=True)
            self._db.executescript(RAW_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the raw queue in {root} ({exc}): check the folder and free space"
            raise SpoolError(msg) from exc
        if first:
            removed = self._remove_raw_orphans() + self._forget_old_ledger()
            if removed:
                log.info("tidied %d raw-queue entries a crash or old trips left", removed)

    def __enter__(self) -> RawSpool:
        return self

    @property
    def _tidies(self) -> bool:
        return self._first

    def _remove_orphans(self) -> int:
        return super()._remove_orphans() if self._first else 0

    def _remove_raw_orphans(self) -> int:
        queued = {
            str(row[0])
            for row in self._db.execute("SELECT id FROM raw_candidates WHERE state = 'queued'")
        }
        removed = 0
        for path in self.raw_dir.iterdir():
            if path.suffix != ".bin" or path.stem not in queued:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _forget_old_ledger(self) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM raw_candidates WHERE state != 'queued' AND sequence_id IN"
                " (SELECT sequence_id FROM raw_trips WHERE state = 'ended' AND ended_at < ?)",
                (time.time() - LEDGER_KEEP_S,),
            )
        return cursor.rowcount

    # Trips ----------------------------------------------------------------------------------

    def open_trip(self, sequence_id: str, trim_m: float, horizon: float | None) -> None:
        """Start (or, for a recording processed again, continue) a trip."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO raw_trips (sequence_id, trim_m, horizon, started_at)"
                " VALUES (?, ?, ?, ?)",
                (sequence_id, trim_m, horizon, time.time()),
            )

    def open_trips(self) -> list[str]:
        rows = self._db.execute("SELECT sequence_id FROM raw_trips WHERE state = 'open'")
        return [str(row[0]) for row in rows]

    def advance_trip(self, sequence_id: str, travelled_m: float) -> None:
        """Record how far the trip has gone (a re-run of a recording starts again from 0)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE raw_trips SET travelled_m = max(travelled_m, ?) WHERE sequence_id = ?",
                (travelled_m, sequence_id),
            )

    def end_trip(self, sequence_id: str, travelled_m: float | None = None) -> int:
        """End a trip at `travelled_m` (default: what it recorded) and drop its candidates in
        the last `trim_m`; how many were dropped."""
        with self._transaction() as db:
            if travelled_m is not None:
                db.execute(
                    "UPDATE raw_trips SET travelled_m = max(travelled_m, ?) WHERE sequence_id = ?",
                    (travelled_m, sequence_id),
                )
            db.execute(
                "UPDATE raw_trips SET state = 'ended', ended_at = ? WHERE sequence_id = ?",
                (time.time(), sequence_id),
            )
            trimmed = db.execute(
                "SELECT c.id FROM raw_candidates c JOIN raw_trips t USING (sequence_id)"
                " WHERE c.sequence_id = ? AND c.state = 'queued'"
                " AND c.travelled_m > t.travelled_m - t.trim_m",
                (sequence_id,),
            ).fetchall()
            db.executemany(
                "UPDATE raw_candidates SET state = 'dropped', reason = 'trip start or end'"
                " WHERE id = ?",
                trimmed,
            )
        for (row_id,) in trimmed:
            self._blob_path(row_id).unlink(missing_ok=True)
        return len(trimmed)

    def trip_horizon(self, sequence_id: str) -> float | None:
        row = self._db.execute(
            "SELECT horizon FROM raw_trips WHERE sequence_id = ?", (sequence_id,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # Candidates -----------------------------------------------------------------------------

    def has_candidate(self, sequence_id: str, position: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM raw_candidates WHERE sequence_id = ? AND position = ?",
            (sequence_id, position),
        ).fetchone()
        return row is not None

    def queue(self, candidate: NewCandidate, blob: bytes) -> int:
        """Store a sealed candidate durably (blob first, then its row); its id."""
        with self._transaction() as db:
            row_id = int(
                db.execute("SELECT coalesce(max(id), 0) + 1 FROM raw_candidates").fetchone()[0]
            )
        path = self._blob_path(row_id)
        write_durably(path, blob)
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO raw_candidates (id, sequence_id, position, source_frame,"
                    " travelled_m, capture_time, pose, size_bytes, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row_id,
                        candidate.sequence_id,
                        candidate.position,
                        candidate.source_frame,
                        candidate.travelled_m,
                        candidate.capture_time,
                        json.dumps(asdict(candidate.pose)),
                        len(blob),
                        time.time(),
                    ),
                )
        except SpoolError:
            path.unlink(missing_ok=True)
            raise
        return row_id

    def next_ready(self, *, skip: Collection[int] = ()) -> RawCandidate | None:
        """The oldest queued candidate, not in `skip`, that can no longer fall into its trip's
        trimmed end."""
        ready = self.ready(1, skip=skip)
        return ready[0] if ready else None

    def ready(self, limit: int, *, skip: Collection[int] = ()) -> list[RawCandidate]:
        """Up to `limit` of the oldest queued candidates, not in `skip`, that can no longer fall
        into their trip's trimmed end, oldest first."""
        rows = self._db.execute(
            "SELECT c.id, c.sequence_id, c.position, c.source_frame, c.travelled_m,"
            " c.capture_time, c.pose, c.size_bytes FROM raw_candidates c"
            f" JOIN raw_trips t USING (sequence_id) WHERE c.state = 'queued' AND {_not_in(skip)}"
            " AND (t.state = 'ended' OR c.travelled_m <= t.travelled_m - t.trim_m)"
            " ORDER BY c.id LIMIT ?",
            (*skip, limit),
        ).fetchall()
        return [_candidate(row) for row in rows]

    def oldest_queued(self, *, skip: Collection[int] = ()) -> RawCandidate | None:
        """The oldest queued candidate not in `skip`, ready or not (the first to go when room is
        needed)."""
        row = self._db.execute(
            "SELECT id, sequence_id, position, source_frame, travelled_m, capture_time, pose,"
            f" size_bytes FROM raw_candidates c WHERE state = 'queued' AND {_not_in(skip)}"
            " ORDER BY id LIMIT 1",
            tuple(skip),
        ).fetchone()
        return None if row is None else _candidate(row)

    def raw_blob(self, candidate: RawCandidate) -> bytes | None:
        """The sealed frame, or None if its file is gone."""
        try:
            return self._blob_path(candidate.id).read_bytes()
        except FileNotFoundError:
            return None

    def settle(self, candidate: RawCandidate, state: str, reason: str | None = None) -> bool:
        """Move a queued candidate to `done`, `dropped` or `evicted` and delete its frame;
        False if something else settled it first."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE raw_candidates SET state = ?, reason = ? WHERE id = ? AND state = 'queued'",
                (state, reason, candidate.id),
            )
        self._blob_path(candidate.id).unlink(missing_ok=True)
        return cursor.rowcount == 1

    def queued_bytes(self) -> int:
        row = self._db.execute(
            "SELECT coalesce(sum(size_bytes), 0) FROM raw_candidates WHERE state = 'queued'"
        ).fetchone()
        return int(row[0])

    def raw_counts(self) -> dict[str, int]:
        """Candidates by state, and how many queued ones wait for their trip to go on or end."""
        counts = {state: 0 for state in ("queued", "done", "dropped", "evicted")}
        counts.update(
            dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM raw_candidates GROUP BY state"
                ).fetchall()
            )
        )
        held = self._db.execute(
            "SELECT COUNT(*) FROM raw_candidates c JOIN raw_trips t USING (sequence_id)"
            " WHERE c.state = 'queued' AND t.state = 'open'"
            " AND c.travelled_m > t.travelled_m - t.trim_m"
        ).fetchone()[0]
        return {**counts, "held_for_trip_end": int(held)}

    def _blob_path(self, row_id: int) -> Path:
        return self.raw_dir / f"{row_id}.bin"


def _candidate(row: tuple[object, ...]) -> RawCandidate:
    row_id, sequence_id, position, source_frame, travelled, when, pose, size = row
    return RawCandidate(
        sequence_id=str(sequence_id),
        position=int(str(position)),
        source_frame=int(str(source_frame)),
        travelled_m=float(str(travelled)),
        capture_time=str(when),
        pose=Pose(**json.loads(str(pose))),
        id=int(str(row_id)),
        size_bytes=int(str(size)),
    )


def write_durably(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that it is there whole after a power cut, or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        hint = "the disk is full: free space or lower ROADSWARM_EDGE_QUOTA_MB"
        msg = f"cannot write {path.name} to {path.parent} ({exc.strerror}): " + (
            hint if exc.errno == errno.ENOSPC else "check the folder's permissions"
        )
        raise SpoolError(msg) from exc


def _not_in(ids: Collection[int]) -> str:
    """SQL that keeps candidates (alias c) whose id is not among `ids`, one parameter each."""
    return f"c.id NOT IN ({', '.join('?' * len(ids))})" if ids else "1"
