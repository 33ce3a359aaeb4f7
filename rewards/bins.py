"""Bins: each segment cut into fixed-length pieces per direction, numbered densely, and weighted.

Bin ids are dense integers: base[2 * segment + direction] + index along the segment, so every
grouping in the scoring core is a sort of one integer array, not of tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewards.arrays import FloatArray, IntArray, SegmentTable
from rewards.epochs import Epoch
from rewards.settings import RewardParams


@dataclass(frozen=True)
class BinLayout:
    """How many bins each segment has, where each (segment, direction)'s numbering starts, and
    each segment's weight factors (class x region multiplier; bounty extra for this epoch)."""

    bin_length_m: float
    length_m: FloatArray
    count: IntArray
    base: IntArray
    factor: FloatArray
    bounty: FloatArray
    region: IntArray

    def bin_ids(self, segment: IntArray, direction: IntArray, offset_m: FloatArray) -> IntArray:
        """The dense bin id of each (segment, direction, offset); offsets are clipped onto the
        segment (a matched fix can project a hair past its end)."""
        count = self.count[segment]
        index = np.floor(np.maximum(offset_m, 0.0) / self.bin_length_m).astype(np.int64)
        index = np.minimum(index, count - 1)
        return np.asarray(self.base[2 * segment.astype(np.int64) + direction] + index, np.int64)

    def bin_weight(self, segment: IntArray, index: IntArray) -> FloatArray:
        """Metres of road in each bin (the last one may be short) x its segment's factor."""
        start = index * self.bin_length_m
        metres = np.clip(self.length_m[segment] - start, 0.0, self.bin_length_m)
        return np.asarray(metres * self.factor[segment], dtype=np.float64)

    def locate(self, bins: IntArray, segment: IntArray, direction: IntArray) -> IntArray:
        """A bin's index along its segment."""
        return np.asarray(bins - self.base[2 * segment.astype(np.int64) + direction], np.int64)


def region_of_segments(segments: SegmentTable, params: RewardParams) -> IntArray:
    """Each segment's region code: the first configured box holding its centre, else 0."""
    region = np.zeros(len(segments.segment_ids), np.int64)
    unassigned = np.ones(len(region), bool)
    for code, box in enumerate(params.regions, start=1):
        west, south, east, north = box.bbox_lonlat
        inside = (
            unassigned
            & (segments.center_lon >= west)
            & (segments.center_lon <= east)
            & (segments.center_lat >= south)
            & (segments.center_lat <= north)
        )
        region[inside] = code
        unassigned &= ~inside
    return region


def bin_layout(segments: SegmentTable, params: RewardParams, epoch: Epoch) -> BinLayout:
    """The bins and weight factors of every segment for `epoch`."""
    length = np.asarray(segments.length_m, np.float64)
    count = np.maximum(1, np.ceil(length / params.bin_length_m)).astype(np.int64)
    per_direction = np.repeat(count, 2)
    base = np.concatenate([[0], np.cumsum(per_direction)[:-1]]).astype(np.int64)
    region = region_of_segments(segments, params)
    multipliers = np.array([1.0, *(r.multiplier for r in params.regions)])
    classes = {name: params.class_factor(name) for name in set(segments.road_class)}
    class_factor = np.array([classes[name] for name in segments.road_class], np.float64)
    return BinLayout(
        bin_length_m=params.bin_length_m,
        length_m=length,
        count=count,
        base=base,
        factor=class_factor * multipliers[region],
        bounty=_bounties(segments, params, epoch),
        region=region,
    )


def _bounties(segments: SegmentTable, params: RewardParams, epoch: Epoch) -> FloatArray:
    """Each segment's bounty extra for this epoch (bounties on one segment add up)."""
    extra = np.zeros(len(segments.segment_ids), np.float64)
    index = segments.index()
    for bounty in params.bounties:
        code = index.get(bounty.segment_id)
        if bounty.epoch == epoch.monday and code is not None:
            extra[code] += bounty.extra_factor
    return extra


def freshness(age_s: FloatArray, tau_days: float) -> FloatArray:
    """1 - exp(-age / tau): a bin refreshed after a long time earns nearly 1, right after 0."""
    return np.asarray(-np.expm1(-np.maximum(age_s, 0.0) / (tau_days * 86_400.0)), np.float64)
