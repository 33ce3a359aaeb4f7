"""An epoch's inputs read from the per-bin summary: O(bins) rows instead of O(frames).

Each row becomes one pseudo-frame for the scoring core (its bin's middle, its first capture time,
its best pass key), so the core's minimum reductions give exactly what the frames give; history
rows are reduced to each bin's last capture in SQL. PostgreSQL sends the rows by binary COPY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rewards.arrays import EpochFrames, History, IntArray, SegmentTable
from rewards.binrows import BinRows, bin_offsets, input_root
from rewards.binsummary import RewardBin
from rewards.epochs import Epoch
from rewards.inputs import _codes
from rewards.pgcopy import copy_select
from rewards.settings import RewardParams

ROW_COLUMNS = (
    ("segment", "", ">i4"),
    ("direction", "", ">i4"),
    ("bin", "", ">i4"),
    ("device", "", ">i4"),
    ("frames", "", ">i4"),
    ("first_ms", "", ">i8"),
    ("best_key", "", ">i8"),
    ("digest", "", "S32"),
)
HISTORY_COLUMNS = (
    ("segment", "", ">i4"),
    ("direction", "", ">i4"),
    ("bin", "", ">i4"),
    ("last_ms", "", ">i8"),
)
ROWS_SQL = """
SELECT seg.code, b.direction::int4, b.bin, dev.code, b.frames, b.first_ms, b.best_key, b.digest
FROM reward_bins b JOIN seg ON seg.segment_id = b.segment_id JOIN dev ON dev.device_id = b.device_id
WHERE b.epoch = {monday} AND b.counted_epoch = {monday}
"""
HISTORY_SQL = """
SELECT seg.code, b.direction::int4, b.bin, max(b.last_ms)
FROM reward_bins b JOIN seg ON seg.segment_id = b.segment_id
WHERE b.epoch < {monday} AND b.counted_epoch <= {monday}
GROUP BY seg.code, b.direction, b.bin
"""


@dataclass(frozen=True)
class SummaryInputs:
    """What the scoring core and the record need, from the summary."""

    frames: EpochFrames
    keys: IntArray
    frame_count: int
    history: History
    input_root: str


def _rows_generic(session: Session, epoch: Epoch, segments: SegmentTable) -> dict[str, Any]:
    found = session.execute(
        select(
            RewardBin.segment_id,
            RewardBin.direction,
            RewardBin.bin,
            RewardBin.device_id,
            RewardBin.frames,
            RewardBin.first_ms,
            RewardBin.best_key,
            RewardBin.digest,
        ).where(RewardBin.epoch == epoch.monday, RewardBin.counted_epoch == epoch.monday)
    ).all()
    columns: list[list[Any]] = [list(c) for c in zip(*found, strict=True)] or [[]] * 8
    segment, direction, bins, device, frames, first, best, digest = columns
    devices = sorted(set(device))
    return {
        "devices": devices,
        "segment": _codes(segment, segments.index()).astype(np.int64),
        "direction": np.array(direction, np.int64),
        "bin": np.array(bins, np.int64),
        "device": _codes(device, {d: i for i, d in enumerate(devices)}).astype(np.int64),
        "frames": np.array(frames, np.int64),
        "first_ms": np.array(first, np.int64),
        "best_key": np.array(best, np.int64),
        "digest": np.frombuffer(b"".join(digest), np.uint8).reshape(len(digest), 32),
    }


def _rows_postgres(session: Session, epoch: Epoch) -> dict[str, Any]:
    records = copy_select(session, ROWS_SQL, {"monday": epoch.monday}, ROW_COLUMNS)
    every_device = session.connection().exec_driver_sql(
        'SELECT device_id FROM devices ORDER BY device_id COLLATE "C"'
    )
    all_devices = [row[0] for row in every_device]
    used, device = np.unique(records["device"].astype(np.int64), return_inverse=True)
    digest = np.frombuffer(records["digest"].tobytes(), np.uint8).reshape(len(records), 32)
    return {
        "devices": [all_devices[i] for i in used.tolist()],
        "device": device.astype(np.int64),
        **{
            name: records[name].astype(np.int64)
            for name in ("segment", "direction", "bin", "frames", "first_ms", "best_key")
        },
        "digest": digest,
    }


def _history(session: Session, epoch: Epoch, segments: SegmentTable) -> dict[str, IntArray]:
    if session.get_bind().dialect.name == "postgresql":
        records = copy_select(session, HISTORY_SQL, {"monday": epoch.monday}, HISTORY_COLUMNS)
        return {name: records[name].astype(np.int64) for name, _, _ in HISTORY_COLUMNS}
    found = session.execute(
        select(
            RewardBin.segment_id, RewardBin.direction, RewardBin.bin, func.max(RewardBin.last_ms)
        )
        .where(RewardBin.epoch < epoch.monday, RewardBin.counted_epoch <= epoch.monday)
        .group_by(RewardBin.segment_id, RewardBin.direction, RewardBin.bin)
    ).all()
    columns: list[list[Any]] = [list(c) for c in zip(*found, strict=True)] or [[]] * 4
    return {
        "segment": _codes(columns[0], segments.index()).astype(np.int64),
        "direction": np.array(columns[1], np.int64),
        "bin": np.array(columns[2], np.int64),
        "last_ms": np.array(columns[3], np.int64),
    }


def _empty(n: int) -> NDArray[np.int64]:
    return np.zeros(n, np.int64)


def load_summary(
    session: Session, epoch: Epoch, segments: SegmentTable, params: RewardParams
) -> SummaryInputs:
    """The epoch's rows and history from the summary (callers check it is current first)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = _rows_postgres(session, epoch) if postgres else _rows_generic(session, epoch, segments)
    n = len(rows["frames"])
    frames = EpochFrames(
        devices=rows["devices"],
        device=rows["device"].astype(np.int32),
        segment=rows["segment"].astype(np.int32),
        direction=rows["direction"].astype(np.int8),
        offset_m=bin_offsets(rows["bin"], params.bin_length_m),
        distance_m=np.zeros(n, np.float64),
        hdop=np.zeros(n, np.float64),
        time_ms=rows["first_ms"],
        frame_ids=np.zeros((n, 0), np.uint8),
    )
    root_rows = BinRows(
        epoch_ms=_empty(n),
        counted_ms=_empty(n),
        segment=rows["segment"],
        direction=rows["direction"],
        bin=rows["bin"],
        device=rows["device"],
        frames=rows["frames"],
        first_ms=rows["first_ms"],
        last_ms=_empty(n),
        best_key=rows["best_key"],
        digest=rows["digest"],
    )
    root, count = input_root(root_rows, segments.segment_ids, rows["devices"])
    earlier = _history(session, epoch, segments)
    history = History(
        segment=earlier["segment"].astype(np.int32),
        direction=earlier["direction"].astype(np.int8),
        offset_m=bin_offsets(earlier["bin"], params.bin_length_m),
        time_ms=earlier["last_ms"],
    )
    return SummaryInputs(frames, rows["best_key"], count, history, root)
