"""Frames reduced to per-bin capture rows, and the epoch's input root over those rows.

A row is one device's frames on one bin (segment, direction, `bin_length_m` piece, unclipped) of
one capture epoch, split by the epoch whose upload cutoff they made (`counted`): its frame count,
first and last capture time, best pass key and the SHA-256 of its sorted frame ids. Every figure
is a minimum, a maximum or a count, so rows of bins that clipping merges combine exactly, and
scoring the rows gives what scoring the frames gives. The same function reduces frames for the
catalog's summary (`rewards.binsummary`) and for the reference path, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from rewards.arrays import ByteMatrix, EpochFrames, FloatArray, IntArray, SegmentTable
from rewards.merkle import merkle_root
from rewards.settings import RewardParams

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the POSIX epoch
MAX_BIN = (1 << 31) - 1
ROW_TAG = b"roadswarm-bin-frames-v1"
INPUT_TAG = b"roadswarm-epoch-bins-v1"
ROWS_PER_LEAF = 1024
QUALITY_BUCKETS = 1 << 20
TIME_BITS = 32  # milliseconds since the epoch's start: a week is under 2**30
ROOT_RECORD = np.dtype(
    [
        ("segment", "S32"),
        ("direction", "u1"),
        ("bin", ">u4"),
        ("device", "S64"),
        ("frames", ">u4"),
        ("digest", "S32"),
    ]
)


def epoch_start_ms(time_ms: IntArray) -> IntArray:
    """The Monday 00:00 UTC (ms) of the epoch each time falls in."""
    return np.asarray((time_ms - MONDAY_MS) // WEEK_MS * WEEK_MS + MONDAY_MS, np.int64)


def counted_start_ms(capture_start: IntArray, received_us: IntArray, grace_us: int) -> IntArray:
    """The first epoch, from the capture's own, whose cutoff (end + grace) the upload made."""
    end_us = (capture_start + WEEK_MS) * 1000
    late = np.floor_divide(received_us - end_us - grace_us, WEEK_MS * 1000) + 1
    return np.asarray(capture_start + np.maximum(late, 0) * WEEK_MS, np.int64)


def pass_keys_since(
    distance_m: FloatArray, hdop: FloatArray, time_ms: IntArray, start_ms: IntArray | int,
    params: RewardParams,
) -> IntArray:  # fmt: skip
    """Lower is better: the expected position error bucket, then the time since `start_ms`."""
    hdop = np.where(np.isnan(hdop), params.missing_hdop, hdop)
    error_m = distance_m + params.hdop_error_m * hdop
    bucket = np.clip(np.floor(error_m / params.quality_step_m), 0, QUALITY_BUCKETS - 1)
    since = np.clip(time_ms - start_ms, 0, (1 << TIME_BITS) - 1)
    return np.asarray((bucket.astype(np.int64) << TIME_BITS) | since, np.int64)


def unclipped_bins(offset_m: FloatArray, bin_length_m: float) -> IntArray:
    """Each offset's bin along its segment before clipping onto the segment's last bin."""
    index = np.floor(np.maximum(offset_m, 0.0) / bin_length_m)
    return np.minimum(index, MAX_BIN).astype(np.int64)


def bin_offsets(bins: IntArray, bin_length_m: float) -> FloatArray:
    """An offset inside each bin (its middle), which `unclipped_bins` maps back exactly."""
    return np.asarray((bins.astype(np.float64) + 0.5) * bin_length_m, np.float64)


@dataclass(frozen=True)
class FrameColumns:
    """What the reduction reads of each frame (codes index the caller's segment/device lists)."""

    segment: IntArray
    direction: IntArray
    device: IntArray
    offset_m: FloatArray
    distance_m: FloatArray
    hdop: FloatArray
    time_ms: IntArray
    received_us: IntArray | None  # None: every frame counts in its capture epoch
    frame_ids: ByteMatrix


@dataclass(frozen=True)
class BinRows:
    """One row per (epoch, counted epoch, segment, direction, unclipped bin, device)."""

    epoch_ms: IntArray
    counted_ms: IntArray
    segment: IntArray
    direction: IntArray
    bin: IntArray
    device: IntArray
    frames: IntArray
    first_ms: IntArray
    last_ms: IntArray
    best_key: IntArray
    digest: ByteMatrix

    def __len__(self) -> int:
        return len(self.frames)


def _combined(parts: list[IntArray]) -> IntArray:
    """One int64 per row ordering rows as the tuple of non-negative `parts` does; ranks are
    compressed first where the next part would overflow (one sort instead of a many-key lexsort)."""
    key = np.zeros(len(parts[0]), np.int64)
    for part in parts:
        span = int(part.max()) + 1 if len(part) else 1
        if len(key) and (int(key.max()) + 1) * span >= 1 << 62:
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
        key = key * span + part
    return key


def _row_order(group: IntArray, ids: ByteMatrix) -> IntArray:
    """Rows by group, then by frame id as bytes: the ids' first 8 bytes decide unless two in a
    group tie there (ids are hashes: practically never), then all 32 do."""
    words = np.ascontiguousarray(ids).view(">u8").reshape(-1, 4).astype(np.uint64)
    order = np.lexsort((words[:, 0], group))
    same = (group[order][1:] == group[order][:-1]) & (words[order, 0][1:] == words[order, 0][:-1])
    if bool(np.any(same)):
        order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0], group))
    return np.asarray(order, np.int64)


def _starts(group: IntArray) -> IntArray:
    """Where each run of equal (sorted) group keys begins."""
    change = np.ones(len(group), bool)
    change[1:] = group[1:] != group[:-1]
    return np.flatnonzero(change).astype(np.int64)


def _digests(ids: ByteMatrix, starts: IntArray) -> ByteMatrix:
    """SHA-256 of each row's frame ids (already sorted within the row)."""
    if len(starts) == 0:
        return np.zeros((0, 32), np.uint8)
    data = memoryview(np.ascontiguousarray(ids).tobytes())
    ends = (np.append(starts[1:], len(ids)) * 32).tolist()
    tagged = hashlib.sha256(ROW_TAG)
    out = []
    for start, end in zip((starts * 32).tolist(), ends, strict=True):
        digest = tagged.copy()
        digest.update(data[start:end])
        out.append(digest.digest())
    return np.frombuffer(b"".join(out), np.uint8).reshape(len(starts), 32)


def _take_rows(ids: ByteMatrix, order: IntArray) -> ByteMatrix:
    """Rows of 32-byte ids in `order` (moved as 8-byte words: several times faster)."""
    words = np.ascontiguousarray(ids).view(np.uint64).reshape(len(ids), 4)
    return np.take(words, order, axis=0).view(np.uint8).reshape(len(order), 32)


def reduce_frames(columns: FrameColumns, params: RewardParams) -> BinRows:
    """The frames' rows, sorted by (epoch, counted, segment, direction, bin, device)."""
    epoch = epoch_start_ms(columns.time_ms)
    counted = (
        epoch
        if columns.received_us is None
        else counted_start_ms(epoch, columns.received_us, _grace_us(params))
    )
    bins = unclipped_bins(columns.offset_m, params.bin_length_m)
    keys = pass_keys_since(columns.distance_m, columns.hdop, columns.time_ms, epoch, params)
    first_week = int(epoch.min()) if len(epoch) else 0
    group = _combined(
        [
            (epoch - first_week) // WEEK_MS,
            (counted - first_week) // WEEK_MS,
            columns.segment,
            columns.direction,
            bins,
            columns.device,
        ]
    )
    order = _row_order(group, columns.frame_ids)
    starts = _starts(group[order])
    first = order[starts]
    return BinRows(
        epoch_ms=epoch[first],
        counted_ms=counted[first],
        segment=columns.segment[first].astype(np.int64),
        direction=columns.direction[first].astype(np.int64),
        bin=bins[first],
        device=columns.device[first].astype(np.int64),
        frames=np.diff(np.append(starts, len(order))).astype(np.int64),
        first_ms=_reduce(np.minimum, columns.time_ms[order], starts),
        last_ms=_reduce(np.maximum, columns.time_ms[order], starts),
        best_key=_reduce(np.minimum, keys[order], starts),
        digest=_digests(_take_rows(columns.frame_ids, order), starts),
    )


def _reduce(function: np.ufunc, values: IntArray, starts: IntArray) -> IntArray:
    if len(starts) == 0:
        return np.zeros(0, np.int64)
    return np.asarray(function.reduceat(values, starts), np.int64)


def _grace_us(params: RewardParams) -> int:
    """The grace period in whole microseconds, as `timedelta(hours=...)` rounds it."""
    return round(params.grace_period_h * 3_600_000_000)


def input_root(
    rows: BinRows, segment_ids: list[str], device_ids: list[str]
) -> tuple[str, int]:  # fmt: skip
    """The Merkle root over an epoch's rows (by segment id, direction, bin, device id; each with
    its frame count and the digest of its frame ids), `ROWS_PER_LEAF` rows a leaf; and the frames."""
    segments = np.array(segment_ids, "S32") if segment_ids else np.zeros(0, "S32")
    devices = np.array(device_ids, "S64") if device_ids else np.zeros(0, "S64")
    segment_rank = np.argsort(np.argsort(segments, kind="stable"), kind="stable")
    device_rank = np.argsort(np.argsort(devices, kind="stable"), kind="stable")
    order = np.lexsort(
        (device_rank[rows.device], rows.bin, rows.direction, segment_rank[rows.segment])
    )
    records = np.zeros(len(rows), ROOT_RECORD)
    records["segment"] = segments[rows.segment[order]]
    records["direction"] = rows.direction[order]
    records["bin"] = rows.bin[order]
    records["device"] = devices[rows.device[order]]
    records["frames"] = rows.frames[order]
    records["digest"] = _as_bytes(rows.digest[order])
    data = records.tobytes()
    width = ROOT_RECORD.itemsize * ROWS_PER_LEAF
    leaves = [data[i : i + width] for i in range(0, len(data), width)]
    return merkle_root(INPUT_TAG, leaves).hex(), int(rows.frames.sum())


def _as_bytes(digest: ByteMatrix) -> np.ndarray:
    return np.ascontiguousarray(digest).view("S32").ravel()


def frames_input_root(
    frames: EpochFrames, segments: SegmentTable, params: RewardParams
) -> tuple[str, int]:  # fmt: skip
    """The input root of an epoch's frames, as the reference path computes it."""
    columns = FrameColumns(
        segment=frames.segment.astype(np.int64),
        direction=frames.direction.astype(np.int64),
        device=frames.device.astype(np.int64),
        offset_m=frames.offset_m,
        distance_m=frames.distance_m,
        hdop=frames.hdop,
        time_ms=frames.time_ms,
        received_us=None,
        frame_ids=frames.frame_ids,
    )
    return input_root(reduce_frames(columns, params), segments.segment_ids, frames.devices)
