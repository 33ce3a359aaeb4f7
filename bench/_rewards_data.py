"""Synthetic epochs for the rewards benchmark and tests: segments, matched frames and history as
arrays, seeded, with popular and quiet roads so bins are shared by several devices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewards.arrays import EpochFrames, History, SegmentTable
from rewards.epochs import Epoch

CLASSES = ("primary", "secondary", "tertiary", "residential", "service", "trunk_link")


@dataclass(frozen=True)
class SyntheticEpoch:
    """An epoch's inputs and the epoch they fall in."""

    epoch: Epoch
    segments: SegmentTable
    frames: EpochFrames
    history: History


def synthetic_segments(count: int, rng: np.random.Generator) -> SegmentTable:
    """`count` segments of 10 m to 1 km around Helsinki, ids sorted like the catalog's."""
    ids = sorted(f"{value:032x}" for value in rng.integers(0, 2**63, count, dtype=np.int64))
    classes = rng.integers(0, len(CLASSES), count)
    return SegmentTable(
        segment_ids=ids,
        length_m=np.clip(rng.lognormal(4.3, 0.9, count), 10.0, 1000.0),
        road_class=[CLASSES[c] for c in classes],
        center_lon=24.9 + rng.random(count) * 0.2,
        center_lat=60.1 + rng.random(count) * 0.1,
    )


def _popular(rng: np.random.Generator, segments: int, size: int) -> np.ndarray:
    """Segment codes drawn with a long tail (a few busy roads, many quiet ones)."""
    return np.minimum(rng.zipf(1.3, size) - 1, segments - 1).astype(np.int32) ^ 0


def synthetic_epoch(
    *, frames: int, segments: int, devices: int, history: int, seed: int, epoch: Epoch
) -> SyntheticEpoch:
    """Matched frames spread over the epoch, half the segments busy, and earlier captures."""
    rng = np.random.default_rng(seed)
    table = synthetic_segments(segments, rng)
    permutation = rng.permutation(segments).astype(np.int32)
    segment = permutation[_popular(rng, segments, frames)]
    start_ms = int(epoch.start.timestamp()) * 1000
    week_ms = 7 * 86_400_000
    device_ids = sorted(
        f"{value:064x}" for value in rng.integers(0, 2**63, devices, dtype=np.int64)
    )
    epoch_frames = EpochFrames(
        devices=device_ids,
        device=rng.integers(0, devices, frames, dtype=np.int32),
        segment=segment,
        direction=rng.integers(0, 2, frames, dtype=np.int8),
        offset_m=rng.random(frames) * table.length_m[segment],
        distance_m=np.abs(rng.normal(0.0, 3.0, frames)),
        hdop=np.where(rng.random(frames) < 0.1, np.nan, rng.uniform(0.6, 3.0, frames)),
        time_ms=start_ms + rng.integers(0, week_ms, frames, dtype=np.int64),
        frame_ids=rng.integers(0, 256, (frames, 32), dtype=np.uint8),
    )
    earlier = permutation[_popular(rng, segments, history)]
    past = History(
        segment=earlier,
        direction=rng.integers(0, 2, history, dtype=np.int8),
        offset_m=rng.random(history) * table.length_m[earlier],
        time_ms=start_ms - rng.integers(1, 8 * week_ms, history, dtype=np.int64),
    )
    return SyntheticEpoch(epoch, table, epoch_frames, past)
