"""Keyframes for spool tests: stand-in bytes and a record that names them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from edge.package import KeyframeRecord


def keyframe(
    sequence: str, index: int, travelled_m: float, when: datetime, *, size: int = 0
) -> tuple[KeyframeRecord, bytes]:
    """Keyframe `index` of `sequence`, `travelled_m` along it, taken `when` (bytes padded to
    `size`); the record names the bytes by their sha256 as the spool expects."""
    data = f"{sequence}/{index}".encode().ljust(size, b".")
    record = KeyframeRecord(
        frame_id=hashlib.sha256(data).hexdigest(),
        capture_time=when.isoformat(),
        lat=60.17,
        lon=24.94,
        altitude_m=None,
        heading_deg=0.0,
        speed_mps=8.0,
        hdop=1.0,
        sequence_id=sequence,
        index=index,
        travelled_m=travelled_m,
        source_frame=index,
        model_versions={},
    )
    return record, data


def record_for(data: bytes, sequence_id: str, index: int) -> KeyframeRecord:
    """A keyframe 8 m after the previous one, captured half an hour ago."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    return KeyframeRecord(
        frame_id=hashlib.sha256(data).hexdigest(),
        capture_time=(start + timedelta(seconds=index)).isoformat(),
        lat=60.2 + index * 8 / 111_320,
        lon=24.9,
        altitude_m=None,
        heading_deg=0.0,
        speed_mps=8.0,
        hdop=1.0,
        sequence_id=sequence_id,
        index=index,
        travelled_m=index * 8.0,
        source_frame=index * 30,
        model_versions={"face": "f@1", "plate": "p@1"},
    )
