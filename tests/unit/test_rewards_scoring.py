"""Scoring and the epoch body on arrays: the reward rules, determinism, and property tests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench._rewards_data import synthetic_epoch
from rewards.arrays import EpochFrames, History, SegmentTable
from rewards.binrows import frames_input_root
from rewards.bins import bin_layout
from rewards.canonical import canonical_json
from rewards.epochs import Epoch
from rewards.ledger import GENESIS
from rewards.record import EpochContext, epoch_body
from rewards.scoring import score_epoch
from rewards.settings import Region, RewardParams

EPOCH = Epoch.parse("2026-11-23")
START_MS = int(EPOCH.start.timestamp()) * 1000
DAY_MS = 86_400_000
DEVICES = [f"{i:064x}" for i in range(1, 6)]
SEGMENTS = SegmentTable(
    segment_ids=["a", "b", "c"],
    length_m=np.array([30.0, 45.0, 100.0]),
    road_class=["primary", "residential", "service"],
    center_lon=np.array([24.9, 24.95, 25.2]),
    center_lat=np.array([60.1, 60.1, 60.1]),
)
CAPPED = RewardParams(
    device_cap_bp=4_000,
    regions=(
        Region(name="east", bbox_lonlat=(25.0, 60.0, 26.0, 61.0), multiplier=2.0, cap_bp=3_000),
    ),
)

Row = tuple[
    int, int, int, float, float, float, int
]  # device, segment, direction, offset, distance, hdop, ms


def frames_of(rows: list[Row]) -> EpochFrames:
    """Arrays from (device, segment, direction, offset share, distance, hdop, ms) rows."""
    seg = np.array([r[1] for r in rows], np.int32)
    return EpochFrames(
        devices=DEVICES,
        device=np.array([r[0] for r in rows], np.int32),
        segment=seg,
        direction=np.array([r[2] for r in rows], np.int8),
        offset_m=np.array([r[3] for r in rows], np.float64) * SEGMENTS.length_m[seg],
        distance_m=np.array([r[4] for r in rows], np.float64),
        hdop=np.array([r[5] for r in rows], np.float64),
        time_ms=START_MS + np.array([r[6] for r in rows], np.int64),
        frame_ids=np.array(
            [np.frombuffer(bytes([i % 256, i // 256]) * 16, np.uint8) for i in range(len(rows))]
        ).reshape(-1, 32),
    )


def body_for(
    frames: EpochFrames, history: History, params: RewardParams, segments: SegmentTable = SEGMENTS
) -> dict[str, object]:
    """The epoch body of these arrays, with an empty ledger before it."""
    ctx = EpochContext(EPOCH, params, EPOCH.end, "test", GENESIS, "00" * 32, None, {})
    scores = score_epoch(frames, history, segments, params, EPOCH)
    root, _ = frames_input_root(frames, segments, params)
    return epoch_body(ctx, scores, input_root=root, excluded=[])


def gross(body: dict[str, object]) -> dict[str, int]:
    """Gross amount per device id."""
    return {d["device_id"]: int(d["gross"]) for d in body["details"]["devices"]}  # type: ignore[index]


rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 2),
        st.integers(0, 1),
        st.floats(0, 1),
        st.floats(0, 10),
        st.sampled_from([0.7, 1.0, 2.5, float("nan")]),
        st.integers(0, 7 * DAY_MS - 1),
    ),
    min_size=1,
    max_size=30,
)
history_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 1), st.floats(0, 1), st.integers(1, 30 * DAY_MS)),
    max_size=8,
)


def history_of(rows: list[tuple[int, int, float, int]]) -> History:
    """Earlier captures from (segment, direction, offset share, ms before the epoch) rows."""
    seg = np.array([r[0] for r in rows], np.int32)
    return History(
        segment=seg,
        direction=np.array([r[1] for r in rows], np.int8),
        offset_m=np.array([r[2] for r in rows], np.float64) * SEGMENTS.length_m[seg],
        time_ms=START_MS - np.array([r[3] for r in rows], np.int64),
    )


def test_ranks_repeat_passes_freshness_and_bonus() -> None:
    """Four devices on one bin earn 1, 0.75, 0.25, 0 of it; a repeat pass adds nothing; the
    earliest gets the new bin's bonus; a bin seen a day earlier is worth 1 - exp(-1/7)."""
    rows: list[Row] = [
        (0, 0, 0, 0.1, 1.0, 1.0, 5000),  # rank 2: as good as device 2, earlier
        (0, 0, 0, 0.2, 1.0, 1.0, 9000),  # repeat pass, same bin
        (1, 0, 0, 0.1, 0.0, 0.7, 7000),  # best quality: rank 1
        (2, 0, 0, 0.1, 1.0, 1.0, 6000),  # rank 3
        (3, 0, 0, 0.1, 9.0, 2.5, 1000),  # earliest, worst quality: bonus, rank 4
        (0, 2, 0, 0.01, 1.0, 1.0, DAY_MS),
    ]
    history = history_of([(2, 0, 0.01, 1)])  # seg c bin 0 captured 1 ms before the epoch
    scores = score_epoch(frames_of(rows), history, SEGMENTS, RewardParams(), EPOCH)
    coverage = scores.points["coverage"][:, 0]
    weight_a = 20.0 * 1.0
    fresh_c = 1 - np.exp(-(DAY_MS + 1) / 7 / DAY_MS)
    assert np.allclose(
        coverage[:4], [0.75 * weight_a + 20 * 0.3 * fresh_c, weight_a, 0.25 * weight_a, 0]
    )
    bonus = scores.points["first_capture"][:, 0]
    assert np.allclose(bonus[:4], [0, 0, 0, 0.5 * weight_a])


def test_shuffled_frames_give_byte_identical_records() -> None:
    """The epoch body is the same bytes whatever the order of the frames."""
    data = synthetic_epoch(
        frames=20_000, segments=500, devices=40, history=4_000, seed=7, epoch=EPOCH
    )
    first = canonical_json(body_for(data.frames, data.history, CAPPED, data.segments))
    order = np.random.default_rng(1).permutation(len(data.frames))
    shuffled = body_for(data.frames.take(order), data.history, CAPPED, data.segments)
    assert canonical_json(shuffled) == first


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, history=history_strategy, capped=st.booleans())
def test_allocations_are_exact_and_only_for_devices_that_captured(
    rows: list[Row], history: list[tuple[int, int, float, int]], capped: bool
) -> None:
    """Allocations sum exactly to the pool (with what caps carry over), none is negative, and a
    device without captures gets nothing."""
    params = CAPPED if capped else RewardParams()
    body = body_for(frames_of(rows), history_of(history), params)
    pool = body["statement"]["pool"]  # type: ignore[index]
    amounts = gross(body)
    assert sum(amounts.values()) + int(pool["carried_out"]) == int(pool["total"])
    assert all(a >= 0 for a in amounts.values())
    assert DEVICES[4] not in amounts
    for entry in body["details"]["devices"]:  # type: ignore[index]
        payees = entry["payees"]
        assert int(payees["driver"]["amount"]) + int(payees["fleet_manager"]["amount"]) == int(
            entry["gross"]
        )
        assert sum(int(a["amount"]) for a in entry["allocations"]) == int(entry["gross"])


def _first_time_in_bin(rows: list[Row], target: Row) -> int:
    layout = bin_layout(SEGMENTS, RewardParams(), EPOCH)
    frames = frames_of([*rows, target])
    bins = layout.bin_ids(
        frames.segment.astype(np.int64), frames.direction.astype(np.int64), frames.offset_m
    )
    return int(frames.time_ms[bins == bins[-1]].min() - START_MS)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, history=history_strategy, data=st.data())
def test_a_redundant_capture_never_raises_anyone_elses_share(
    rows: list[Row], history: list[tuple[int, int, float, int]], data: st.DataObject
) -> None:
    """A capture of a bin already captured this epoch (by any device, at or after that bin's
    first capture) never raises another device's share of points, nor its amount beyond the one
    base unit largest-remainder rounding can move."""
    base = rows[data.draw(st.integers(0, len(rows) - 1))]
    first = _first_time_in_bin(rows, base)
    extra: Row = (
        data.draw(st.integers(0, 4)),
        base[1],
        base[2],
        base[3],
        data.draw(st.floats(0, 10)),
        data.draw(st.sampled_from([0.7, 1.0, float("nan")])),
        data.draw(st.integers(first, 7 * DAY_MS - 1)),
    )
    past = history_of(history)
    before = score_epoch(frames_of(rows), past, SEGMENTS, RewardParams(), EPOCH)
    after = score_epoch(frames_of([*rows, extra]), past, SEGMENTS, RewardParams(), EPOCH)
    points_before = np.sum(list(before.points.values()), axis=(0, 2))
    points_after = np.sum(list(after.points.values()), axis=(0, 2))
    for device in range(len(DEVICES)):
        if device != extra[0]:
            assert points_after[device] <= points_before[device]
            share_before = points_before[device] / max(points_before.sum(), 1e-300)
            assert points_after[device] / points_after.sum() <= share_before * (1 + 1e-12)
    amounts_before = gross(body_for(frames_of(rows), past, RewardParams()))
    amounts_after = gross(body_for(frames_of([*rows, extra]), past, RewardParams()))
    for device_id, amount in amounts_after.items():
        if device_id != DEVICES[extra[0]]:
            assert amount <= amounts_before.get(device_id, 0) + 1


def test_bounties_and_regions_raise_their_segments() -> None:
    """A bounty for this epoch adds its share as the `bounty` reason; one for another epoch does
    not; a region multiplier scales coverage."""
    rows: list[Row] = [(0, 0, 0, 0.5, 1.0, 1.0, 1000), (1, 2, 0, 0.5, 1.0, 1.0, 1000)]
    bounty = {"epoch": EPOCH.monday, "segment_id": "a", "extra_factor": 1.5}
    later = {"epoch": EPOCH.monday + timedelta(days=7), "segment_id": "c", "extra_factor": 9.0}
    params = RewardParams(bounties=(bounty, later), regions=CAPPED.regions)  # type: ignore[arg-type]
    scores = score_epoch(frames_of(rows), History.empty(), SEGMENTS, params, EPOCH)
    assert np.isclose(scores.points["bounty"][0].sum(), 1.5 * 20.0)
    assert scores.points["bounty"][1].sum() == 0
    assert np.isclose(scores.points["coverage"][1, 1], 20.0 * 0.3 * 2.0)
