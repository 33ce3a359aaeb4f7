"""Coverage-freshness scoring: the epoch's frames become points per device, region and reason.

Rules (ARCHITECTURE.md, "Rewards"):
- a frame falls in one bin (segment, direction, 20 m piece); a device's passes over a bin count
  once, by its best pass (lowest expected position error, then earliest);
- a bin captured in the epoch is worth weight x freshness, where freshness = 1 - exp(-age / tau)
  and age runs from the bin's last capture before the epoch to its first capture in it (bins never
  captured before are worth their full weight, and their first capturer earns a bonus);
- the distinct devices on a bin are ranked by quality, then time, then device id, and earn the
  rank weights (1, 0.75, 0.25, then 0) of the bin's worth; a bounty adds a share on top.

Everything is sorting and grouping of integer arrays, so the result depends on the frames, never on
their order, and 10 million frames take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewards.arrays import BoolArray, EpochFrames, FloatArray, History, IntArray, SegmentTable
from rewards.binrows import pass_keys_since
from rewards.bins import BinLayout, bin_layout, freshness
from rewards.epochs import Epoch
from rewards.settings import RewardParams

REASONS = ("coverage", "first_capture", "bounty")


@dataclass(frozen=True)
class Passes:
    """One row per (bin, device): the device's best pass and what it earned there."""

    bin: IntArray
    segment: IntArray
    direction: IntArray
    index: IntArray
    device: IntArray
    rank: IntArray
    coverage: FloatArray
    bounty: FloatArray
    bonus: FloatArray


@dataclass(frozen=True)
class CapturedBins:
    """One row per bin captured in the epoch."""

    segment: IntArray
    direction: IntArray
    index: IntArray
    weight: FloatArray
    freshness: FloatArray
    first_capture: BoolArray


@dataclass(frozen=True)
class Scores:
    """Points per reason as (device x region) matrices, and the passes and bins behind them."""

    devices: list[str]
    regions: list[str]
    points: dict[str, FloatArray]
    passes: Passes
    bins: CapturedBins
    frames: int


def _starts(sorted_keys: IntArray) -> IntArray:
    """Where each run of equal keys begins."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    change = np.ones(len(sorted_keys), bool)
    change[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(change).astype(np.int64)


def pass_keys(frames: EpochFrames, params: RewardParams, epoch: Epoch) -> IntArray:
    """Lower is better: the expected position error bucket, then the time into the epoch."""
    start_ms = int(epoch.start.timestamp()) * 1000
    return pass_keys_since(frames.distance_m, frames.hdop, frames.time_ms, start_ms, params)


def _best_passes(frames: EpochFrames, layout: BinLayout, keys: IntArray) -> dict[str, IntArray]:
    """Each device's best pass per bin (repeat passes count once), with its earliest time there.

    One sort by (bin, device) and two minimum reductions: a lexicographic sort with the pass key
    would cost twice as much, and which of two equal passes is kept changes nothing."""
    segment = frames.segment.astype(np.int64)
    direction = frames.direction.astype(np.int64)
    devices = max(1, len(frames.devices))
    pair = layout.bin_ids(segment, direction, frames.offset_m) * devices + frames.device
    order = np.argsort(pair)
    starts = _starts(pair[order])
    first = order[starts]
    if len(starts) == 0:
        empty = np.zeros(0, np.int64)
        return dict.fromkeys(("bin", "segment", "direction", "device", "key", "earliest"), empty)
    return {
        "bin": pair[first] // devices,
        "segment": segment[first],
        "direction": direction[first],
        "device": pair[first] % devices,
        "key": np.minimum.reduceat(keys[order], starts),
        "earliest": np.minimum.reduceat(frames.time_ms[order], starts),
    }


def _ranks(best: dict[str, IntArray]) -> IntArray:
    """Rank of each pass among its bin's devices: quality, then time, then device id.

    Passes come sorted by (bin, device); two stable sorts (by pass key, then by bin) order them by
    (bin, key, device) at a fraction of a three-key lexsort's cost."""
    by_key = np.argsort(best["key"], kind="stable")
    order = by_key[np.argsort(best["bin"][by_key], kind="stable")]
    starts = _starts(best["bin"][order])
    sizes = np.diff(np.append(starts, len(order)))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    return rank


def _last_before(layout: BinLayout, history: History, bins: IntArray) -> tuple[IntArray, BoolArray]:
    """For each captured bin, the latest earlier capture's time and whether there was one."""
    earlier = layout.bin_ids(
        history.segment.astype(np.int64), history.direction.astype(np.int64), history.offset_m
    )
    order = np.argsort(earlier, kind="stable")
    starts = _starts(earlier[order])
    known = earlier[order][starts]
    latest = np.maximum.reduceat(history.time_ms[order], starts) if len(starts) else known
    at = np.minimum(np.searchsorted(known, bins), max(len(known) - 1, 0))
    found = (known[at] == bins) if len(known) else np.zeros(len(bins), bool)
    return np.where(found, latest[at] if len(known) else 0, 0), found


def _captured_bins(
    best: dict[str, IntArray], layout: BinLayout, history: History, params: RewardParams
) -> tuple[CapturedBins, IntArray]:
    """The bins of the epoch (passes are sorted by bin) and each pass's bin row."""
    starts = _starts(best["bin"])
    segment, direction = best["segment"][starts], best["direction"][starts]
    index = layout.locate(best["bin"][starts], segment, direction)
    first_ms = np.minimum.reduceat(best["earliest"], starts) if len(starts) else starts
    last_ms, seen = _last_before(layout, history, best["bin"][starts])
    fresh = np.where(seen, freshness((first_ms - last_ms) / 1000.0, params.freshness_tau_days), 1.0)
    row = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(best["bin"]))))
    captured = CapturedBins(
        segment, direction, index, layout.bin_weight(segment, index), fresh, ~seen
    )
    return captured, row


def _bonus(
    best: dict[str, IntArray], bins: CapturedBins, row: IntArray, params: RewardParams
) -> FloatArray:
    """The first-capture bonus goes to the earliest device on a never-captured bin (equal times:
    the better pass, then the lower device id)."""
    first_ms = np.full(len(bins.weight), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first_ms, row, best["earliest"])
    candidates = np.flatnonzero((best["earliest"] == first_ms[row]) & bins.first_capture[row])
    order = candidates[
        np.lexsort((best["device"][candidates], best["key"][candidates], row[candidates]))
    ]
    winners = order[_starts(row[order])]
    bonus = np.zeros(len(row), np.float64)
    bonus[winners] = bins.weight[row[winners]] * params.first_capture_bonus
    return bonus


def score_epoch(
    frames: EpochFrames,
    history: History,
    segments: SegmentTable,
    params: RewardParams,
    epoch: Epoch,
    *,
    keys: IntArray | None = None,
    frame_count: int | None = None,
) -> Scores:
    """Points per device, region and reason for the epoch's frames.

    The summary path passes one row per (bin, device) as a frame, with the row's best pass key
    in `keys` and its number of frames summed in `frame_count`."""
    layout = bin_layout(segments, params, epoch)
    chosen = pass_keys(frames, params, epoch) if keys is None else keys
    best = _best_passes(frames, layout, chosen)
    rank = _ranks(best)
    bins, row = _captured_bins(best, layout, history, params)
    table = np.array([*params.rank_weights, 0.0], np.float64)
    worth = bins.weight[row] * bins.freshness[row]
    coverage = worth * table[np.minimum(rank, len(params.rank_weights))]
    passes = Passes(
        bin=best["bin"],
        segment=best["segment"],
        direction=best["direction"],
        index=bins.index[row],
        device=best["device"],
        rank=rank,
        coverage=coverage,
        bounty=coverage * layout.bounty[best["segment"]],
        bonus=_bonus(best, bins, row, params),
    )
    regions = params.region_names()
    return Scores(
        devices=frames.devices,
        regions=regions,
        points=_per_device_region(passes, layout, len(frames.devices), len(regions)),
        passes=passes,
        bins=bins,
        frames=len(frames) if frame_count is None else frame_count,
    )


def _per_device_region(
    passes: Passes, layout: BinLayout, devices: int, regions: int
) -> dict[str, FloatArray]:
    cell = passes.device * regions + layout.region[passes.segment]
    size = devices * regions
    return {
        reason: np.bincount(cell, weights=values, minlength=size)
        .astype(np.float64)
        .reshape(devices, regions)
        for reason, values in (
            ("coverage", passes.coverage),
            ("first_capture", passes.bonus),
            ("bounty", passes.bounty),
        )
    }
