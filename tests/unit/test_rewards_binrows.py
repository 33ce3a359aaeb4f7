"""Frames reduced to per-bin rows: grouping, row digests over sorted ids (ties in the leading
bytes included), counted epochs of late uploads, and independence from the frames' order."""

from __future__ import annotations

import hashlib

import numpy as np

from rewards.binrows import (
    ROW_TAG,
    WEEK_MS,
    FrameColumns,
    counted_start_ms,
    epoch_start_ms,
    reduce_frames,
)
from rewards.epochs import Epoch
from rewards.settings import RewardParams

EPOCH = Epoch.parse("2026-11-23")
START_MS = int(EPOCH.start.timestamp()) * 1000


def columns(ids: np.ndarray, offsets: list[float], devices: list[int]) -> FrameColumns:
    """Frames on segment 0, forward, an hour apart."""
    n = len(offsets)
    return FrameColumns(
        segment=np.zeros(n, np.int64),
        direction=np.zeros(n, np.int64),
        device=np.array(devices, np.int64),
        offset_m=np.array(offsets, np.float64),
        distance_m=np.ones(n),
        hdop=np.full(n, np.nan),
        time_ms=START_MS + 3_600_000 * np.arange(n, dtype=np.int64),
        received_us=None,
        frame_ids=ids,
    )


def test_rows_group_by_bin_and_device_and_digest_sorted_ids() -> None:
    """Two frames of one device in one bin make one row whose digest covers both ids in byte
    order, even when their first 8 bytes are equal; another device gets its own row."""
    ids = np.zeros((3, 32), np.uint8)
    ids[0, 31], ids[1, 31], ids[2, 0] = 9, 3, 1  # ids 0 and 1 tie on their first 8 bytes
    rows = reduce_frames(columns(ids, [1.0, 5.0, 2.0], [0, 0, 1]), RewardParams())
    assert rows.frames.tolist() == [2, 1] and rows.device.tolist() == [0, 1]
    expected = hashlib.sha256(ROW_TAG + ids[1].tobytes() + ids[0].tobytes()).digest()
    assert rows.digest[0].tobytes() == expected
    assert rows.first_ms[0] == START_MS and rows.last_ms[0] == START_MS + 3_600_000


def test_rows_do_not_depend_on_the_frames_order() -> None:
    """Shuffled frames give the same rows, field by field."""
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    offsets = list(rng.uniform(-3, 90, 200))
    devices = list(rng.integers(0, 5, 200))
    first = reduce_frames(columns(ids, offsets, devices), RewardParams())
    order = rng.permutation(200)
    shuffled = columns(ids[order], [offsets[i] for i in order], [devices[i] for i in order])
    shuffled = FrameColumns(**{**shuffled.__dict__, "time_ms": first_times(order)})
    second = reduce_frames(shuffled, RewardParams())
    for name in ("segment", "bin", "device", "frames", "first_ms", "last_ms", "best_key"):
        assert getattr(first, name).tolist() == getattr(second, name).tolist()
    assert first.digest.tobytes() == second.digest.tobytes()


def first_times(order: np.ndarray) -> np.ndarray:
    """The capture times the unshuffled frames had, in the shuffled order."""
    return np.asarray(START_MS + 3_600_000 * order.astype(np.int64), np.int64)


def test_late_uploads_count_in_the_first_epoch_whose_cutoff_they_made() -> None:
    """With 48 h of grace: received before Wednesday 00:00 of the next week counts in the
    capture's epoch, exactly at the cutoff in the next one, two weeks later in the one after."""
    grace_us = 48 * 3_600_000_000
    captured = epoch_start_ms(np.array([START_MS + 1000] * 3, np.int64))
    cutoff_us = (START_MS + WEEK_MS) * 1000 + grace_us
    received = np.array([cutoff_us - 1, cutoff_us, cutoff_us + WEEK_MS * 1000], np.int64)
    counted = counted_start_ms(captured, received, grace_us)
    assert ((counted - START_MS) // WEEK_MS).tolist() == [0, 1, 2]
