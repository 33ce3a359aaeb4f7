"""The spool as live capture uses it: the raw queue, plus what the quota and `edge status` need of
the keyframes and events (eviction of unbatched keyframes, recent records, event counts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from edge.package import KeyframeRecord
from edge.rawqueue import RawSpool


class LiveSpool(RawSpool):
    """The device's spool during `edge run` (see `RawSpool` for the connections)."""

    def __enter__(self) -> LiveSpool:
        return self

    def evict_oldest_keyframe(self) -> tuple[KeyframeRecord, int] | None:
        """Delete the oldest keyframe not yet in a batch (a sealed batch must stay whole for its
        commit); it and its size, or None if every keyframe is batched."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT frame_id, record FROM keyframes WHERE state = 'ready' AND batch_id IS NULL"
                " ORDER BY created_at, frame_id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM keyframes WHERE frame_id = ?", (row[0],))
        path = self.frames_dir / f"{row[0]}.jpg"
        size = path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        return KeyframeRecord(**json.loads(row[1])), size

    def records_since(self, moment: datetime) -> list[KeyframeRecord]:
        """Keyframes taken on or after the UTC date of `moment` (the text of the capture time is
        compared, so callers filter exact instants themselves)."""
        rows = self._db.execute(
            "SELECT record FROM keyframes WHERE substr(capture_time, 1, 10) >= ?",
            (moment.astimezone(UTC).date().isoformat(),),
        )
        return [KeyframeRecord(**json.loads(row[0])) for row in rows]

    def event_summary(self, kind: str) -> dict[str, object]:
        """How many events of `kind` were recorded, and the last one."""
        count = self._db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()
        last = self._db.execute(
            "SELECT at, message FROM events WHERE kind = ? ORDER BY at DESC LIMIT 1", (kind,)
        ).fetchone()
        return {
            "count": int(count[0]),
            "last": None
            if last is None
            else {"at": datetime.fromtimestamp(last[0], UTC).isoformat(), "message": last[1]},
        }

    def clear_value(self, name: str) -> None:
        """Forget a device value (see `set_value`)."""
        with self._transaction() as db:
            db.execute("DELETE FROM device WHERE name = ?", (name,))
