"""The durable spool: every keyframe stays here until the server has acknowledged it.

SQLite in WAL mode with synchronous FULL, so a committed row survives a power cut. A keyframe's file
is written (temp, fsync, rename) before its row is inserted; a file without a row is an orphan from a
crash and is removed at open. Rows are keyed by frame id (sha256 of the bytes) and by (sequence,
source frame), so processing the same recording again after a crash adds nothing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import EdgeError
from edge.identity import Identity
from edge.package import KeyframeRecord
from ingest.protocol import BatchManifest, CameraCalibration, FrameEntry, SignedManifest, sign

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
LOCK_FILE = "spool.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS keyframes (
    frame_id TEXT PRIMARY KEY,
    sequence_id TEXT NOT NULL,
    source_frame INTEGER NOT NULL,
    capture_time TEXT NOT NULL,
    record TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'uploaded', 'committed')),
    batch_id TEXT,
    created_at REAL NOT NULL,
    UNIQUE (sequence_id, source_frame)
);
CREATE INDEX IF NOT EXISTS keyframes_state ON keyframes (state);
CREATE TABLE IF NOT EXISTS batches (
    counter INTEGER PRIMARY KEY,
    signed_manifest TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'sealed' CHECK (state IN ('sealed', 'committed')),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cameras (
    camera_id TEXT PRIMARY KEY,
    calibration TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sequence_cameras (
    sequence_id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL REFERENCES cameras (camera_id)
);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


class SpoolError(EdgeError):
    """The spool cannot be opened or written (damaged database, full disk, no permission)."""


class Spool:
    """Keyframes and their state on this device."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.frames_dir = root / "keyframes"
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(root / "spool.sqlite3", isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the spool in {root} ({exc}): check the folder and free space"
            raise SpoolError(msg) from exc
        self._lock: int | None = self._claim() if self._tidies else None
        removed = self._remove_orphans()
        if removed:
            log.info("removed %d files a crash left in %s", removed, self.frames_dir)

    @property
    def _tidies(self) -> bool:
        """Whether this connection removes what a crash left (and so must be the only one)."""
        return True

    def _claim(self) -> int:
        """Hold the spool's lock while open: tidying deletes files without a row, which would
        delete a frame another process is about to record."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._db.close()
            msg = (
                f"the spool in {self.root} is in use by another roadswarm process (is `roadswarm "
                "edge run` running?): stop it, or let it upload (it does when an API is configured)"
            )
            raise SpoolError(msg) from None
        return fd

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            msg = f"the spool in {self.root} could not be written ({exc}): check free space"
            raise SpoolError(msg) from exc

    def _remove_orphans(self) -> int:
        """Files no row refers to (a crash between writing the file and its row), and temp files."""
        # A committed keyframe's file is deleted after its commit; a crash may have left it.
        known = {
            row[0]
            for row in self._db.execute("SELECT frame_id FROM keyframes WHERE state != 'committed'")
        }
        removed = 0
        for path in self.frames_dir.iterdir():
            if path.suffix != ".jpg" or path.stem not in known:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def has_source(self, sequence_id: str, source_frame: int) -> bool:
        """Whether this frame of this recording is already spooled (work to skip after a crash)."""
        row = self._db.execute(
            "SELECT 1 FROM keyframes WHERE sequence_id = ? AND source_frame = ?",
            (sequence_id, source_frame),
        ).fetchone()
        return row is not None

    def add(self, record: KeyframeRecord, data: bytes) -> bool:
        """Store a keyframe durably; False if it was already there."""
        path = self.frames_dir / f"{record.frame_id}.jpg"
        tmp = path.with_name(f".{record.frame_id}.tmp")
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            msg = f"cannot write keyframe {record.frame_id[:12]} to {self.frames_dir} ({exc.strerror})"
            raise SpoolError(msg) from exc
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO keyframes (frame_id, sequence_id, source_frame, capture_time, record, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.frame_id,
                    record.sequence_id,
                    record.source_frame,
                    record.capture_time,
                    json.dumps(asdict(record)),
                    time.time(),
                ),
            )
        return cursor.rowcount == 1

    def records(self, state: str | None = None) -> list[KeyframeRecord]:
        query = (
            "SELECT record FROM keyframes"
            + (" WHERE state = ?" if state else "")
            + " ORDER BY sequence_id, source_frame"
        )
        return [
            KeyframeRecord(**json.loads(row[0]))
            for row in self._db.execute(query, (state,) if state else ())
        ]

    def record_event(self, kind: str, message: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (at, kind, message) VALUES (?, ?, ?)",
                (time.time(), kind, message),
            )

    def status(self) -> dict[str, object]:
        """Counts by state, keyframes captured today (UTC), and the last error."""
        counts = {state: 0 for state in ("ready", "uploaded", "committed")}
        counts.update(
            dict(
                self._db.execute("SELECT state, COUNT(*) FROM keyframes GROUP BY state").fetchall()
            )
        )
        today = datetime.now(UTC).date().isoformat()
        captured_today = self._db.execute(
            "SELECT COUNT(*) FROM keyframes WHERE substr(capture_time, 1, 10) = ?", (today,)
        ).fetchone()[0]
        last_error = self._db.execute(
            "SELECT at, message FROM events WHERE kind = 'error' ORDER BY at DESC LIMIT 1"
        ).fetchone()
        return {
            "spool": str(self.root),
            "keyframes": counts,
            "captured_today": captured_today,
            "sequences": self._db.execute(
                "SELECT COUNT(DISTINCT sequence_id) FROM keyframes"
            ).fetchone()[0],
            "batches_sealed": self._db.execute(
                "SELECT COUNT(*) FROM batches WHERE state = 'sealed'"
            ).fetchone()[0],
            "last_error": None
            if last_error is None
            else {
                "at": datetime.fromtimestamp(last_error[0], UTC).isoformat(),
                "message": last_error[1],
            },
        }

    def integrity_problems(self) -> list[str]:
        """Rows without a file, files whose hash is not their name, and SQLite's own check."""
        problems = [row[0] for row in self._db.execute("PRAGMA integrity_check") if row[0] != "ok"]
        for (frame_id,) in self._db.execute(
            "SELECT frame_id FROM keyframes WHERE state != 'committed'"
        ):
            path = self.frames_dir / f"{frame_id}.jpg"
            if not path.is_file():
                problems.append(f"{frame_id}: file missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != frame_id:
                problems.append(f"{frame_id}: file does not match its id")
        return problems

    def seal_batch(self, identity: Identity, *, max_frames: int = 200) -> SignedManifest | None:
        """Group unbatched keyframes into the next signed batch, or None if there are none.

        One transaction takes the next counter, records the signed manifest and marks its
        keyframes, so after a crash either all of that happened or none of it did, and a counter
        is never used twice.
        """
        with self._transaction() as db:
            rows = db.execute(
                "SELECT frame_id, record FROM keyframes WHERE batch_id IS NULL AND state = 'ready'"
                " ORDER BY sequence_id, source_frame LIMIT ?",
                (max_frames,),
            ).fetchall()
            if not rows:
                return None
            last = db.execute("SELECT value FROM device WHERE name = 'last_counter'").fetchone()
            counter = int(last[0]) + 1 if last else 1
            records = [json.loads(record) for _, record in rows]
            camera_of, cameras = self._cameras_of(db, {str(r["sequence_id"]) for r in records})
            entries = [
                self._entry({**r, "camera_id": camera_of.get(str(r["sequence_id"]))})
                for r in records
            ]
            used = {e.camera_id for e in entries if e.camera_id}
            manifest = BatchManifest(
                device_id=identity.device_id,
                counter=counter,
                created_at=datetime.now(UTC),
                frames=entries,
                cameras={k: v for k, v in cameras.items() if k in used},
            )
            signed = sign(manifest, identity.private_key)
            db.execute(
                "INSERT INTO batches (counter, signed_manifest, created_at) VALUES (?, ?, ?)",
                (counter, signed.model_dump_json(), time.time()),
            )
            db.executemany(
                "UPDATE keyframes SET batch_id = ? WHERE frame_id = ?",
                [(str(counter), frame_id) for frame_id, _ in rows],
            )
            db.execute(
                "INSERT INTO device (name, value) VALUES ('last_counter', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(counter),),
            )
        return signed

    def set_sequence_camera(self, sequence_id: str, camera: CameraCalibration) -> str:
        """Record which camera takes a sequence's frames; its id. Batches carry the calibration,
        so the server can project the frames into map tiles."""
        camera_id = camera.camera_id()
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO cameras (camera_id, calibration) VALUES (?, ?)",
                (camera_id, camera.model_dump_json()),
            )
            db.execute(
                "INSERT INTO sequence_cameras (sequence_id, camera_id) VALUES (?, ?)"
                " ON CONFLICT (sequence_id) DO UPDATE SET camera_id = excluded.camera_id",
                (sequence_id, camera_id),
            )
        return camera_id

    def _cameras_of(
        self, db: sqlite3.Connection, sequence_ids: set[str]
    ) -> tuple[dict[str, str], dict[str, CameraCalibration]]:
        """Camera id by sequence, and the calibrations, for the sequences that have one."""
        marks = ",".join("?" * len(sequence_ids))
        rows = db.execute(
            "SELECT s.sequence_id, c.camera_id, c.calibration FROM sequence_cameras s"
            f" JOIN cameras c ON c.camera_id = s.camera_id WHERE s.sequence_id IN ({marks})",
            sorted(sequence_ids),
        ).fetchall()
        by_sequence = {sequence: camera for sequence, camera, _ in rows}
        cameras = {camera: CameraCalibration.model_validate_json(raw) for _, camera, raw in rows}
        return by_sequence, cameras

    def _entry(self, record: dict[str, object]) -> FrameEntry:
        size = (self.frames_dir / f"{record['frame_id']}.jpg").stat().st_size
        fields = {k: v for k, v in record.items() if k in FrameEntry.model_fields}
        return FrameEntry.model_validate({**fields, "size_bytes": size})

    def sealed_batches(self) -> list[SignedManifest]:
        """Batches signed but not yet committed by the server, oldest first."""
        rows = self._db.execute(
            "SELECT signed_manifest FROM batches WHERE state = 'sealed' ORDER BY counter"
        )
        return [SignedManifest.model_validate_json(row[0]) for row in rows]

    def batch_keyframes(self, counter: int) -> dict[str, str]:
        """The state of each keyframe of a batch, by frame id."""
        rows = self._db.execute(
            "SELECT frame_id, state FROM keyframes WHERE batch_id = ?", (str(counter),)
        )
        return dict(rows.fetchall())

    def keyframe_bytes(self, frame_id: str) -> bytes:
        """The JPEG of a keyframe not yet committed."""
        path = self.frames_dir / f"{frame_id}.jpg"
        try:
            return path.read_bytes()
        except OSError as exc:
            msg = f"keyframe {frame_id[:12]} is missing from {self.frames_dir} ({exc.strerror}): run `roadswarm edge status` to check the spool"
            raise SpoolError(msg) from exc

    def mark_uploaded(self, frame_ids: list[str], *, uploaded: bool = True) -> None:
        """Record that the store has (or, after a refusal, lacks) these keyframes."""
        before, after = ("ready", "uploaded") if uploaded else ("uploaded", "ready")
        with self._transaction() as db:
            db.executemany(
                "UPDATE keyframes SET state = ? WHERE frame_id = ? AND state = ?",
                [(after, frame_id, before) for frame_id in frame_ids],
            )

    def mark_committed(self, counter: int) -> int:
        """The server acknowledged the batch: mark it and its keyframes, then free their files."""
        with self._transaction() as db:
            db.execute("UPDATE batches SET state = 'committed' WHERE counter = ?", (counter,))
            db.execute(
                "UPDATE keyframes SET state = 'committed' WHERE batch_id = ?", (str(counter),)
            )
        freed = 0
        for frame_id in self.batch_keyframes(counter):
            path = self.frames_dir / f"{frame_id}.jpg"
            if path.exists():
                path.unlink()
                freed += 1
        return freed

    def get_value(self, name: str) -> str | None:
        """A device setting kept in the spool (e.g. where it registered)."""
        row = self._db.execute("SELECT value FROM device WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, name: str, value: str) -> None:
        """Keep a device setting durably."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO device (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
