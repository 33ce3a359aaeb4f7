"""Tests of `mapbuilder.sequences` and `mapbuilder.smoothing`: stitching, splits, headings, speeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.typing import ArrayLike

from mapbuilder.geo import FloatArray, LocalFrame
from mapbuilder.sequences import SequenceOptions, TrackPoint, stitch, stitch_points

FRAME = LocalFrame(24.94, 60.17)
T0 = 1_780_000_000.0


def _track(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Lon/lat of local metres."""
    return FRAME.to_wgs84(np.asarray(x, float), np.asarray(y, float))


def _off(heading: FloatArray, expected: float) -> FloatArray:
    """Angle between headings and an expected heading, in degrees (0 to 180)."""
    return np.abs((heading - expected + 180.0) % 360.0 - 180.0)


def test_straight_drive_has_its_heading_and_speed_to_the_ends() -> None:
    """Eastwards at 12 m/s, then northwards: headings 90 and 0 degrees, 12 m/s, ends included."""
    east = np.arange(20) * 12.0
    north = np.arange(1, 21) * 12.0
    lon, lat = _track(
        np.concatenate([east, np.full(20, east[-1])]), np.concatenate([np.zeros(20), north])
    )
    (seq,) = stitch(lon, lat, T0 + np.arange(40.0), frame=FRAME)
    assert seq.starts_because == "start"
    assert np.all(_off(seq.heading_deg[:15], 90.0) < 0.5)
    assert np.all(_off(seq.heading_deg[-15:], 0.0) < 0.5)
    assert np.allclose(seq.speed_mps[:15], 12.0, atol=0.05)
    assert np.allclose(seq.smooth_x_m[:15], east[:15], atol=0.05)  # the local fit keeps the ends


def test_noisy_headings_are_recomputed_from_the_smoothed_track() -> None:
    """With 3 m errors at 1 Hz the recomputed heading is mostly within 10 degrees of the true 45
    (the ends, fitted from one side, within 30)."""
    rng = np.random.default_rng(1)
    s = np.arange(60) * 10.0
    lon, lat = _track(s / np.sqrt(2) + rng.normal(0, 3, 60), s / np.sqrt(2) + rng.normal(0, 3, 60))
    (seq,) = stitch(lon, lat, T0 + np.arange(60.0), frame=FRAME)
    error = _off(seq.heading_deg, 45.0)
    assert np.median(error) < 5.0 and np.percentile(error, 90) < 10.0 and error.max() < 30.0


def test_standing_still_holds_the_last_heading() -> None:
    """While standing, the heading is the one the vehicle arrived with, not the jitter's."""
    rng = np.random.default_rng(2)
    x = np.concatenate([np.arange(15) * 10.0, 140.0 + rng.normal(0, 0.3, 30)])
    lon, lat = _track(x, rng.normal(0, 0.3, 45))
    (seq,) = stitch(lon, lat, T0 + np.arange(45.0), frame=FRAME)
    assert np.all(seq.speed_mps[25:40] < 1.0)
    assert np.allclose(seq.heading_deg[25:], seq.heading_deg[24])


@pytest.mark.parametrize(
    ("gap_s", "gap_m", "reason"),
    [(120.0, 50.0, "time gap"), (40.0, 800.0, "distance gap"), (1.0, 300.0, "speed jump")],
)
def test_gaps_split_sequences(gap_s: float, gap_m: float, reason: str) -> None:
    """A long pause, a long way between fixes or a jump too fast to drive starts a new sequence."""
    x = np.concatenate([np.arange(10) * 10.0, 90.0 + gap_m + np.arange(10) * 10.0])
    t = np.concatenate([np.arange(10.0), 9.0 + gap_s + np.arange(10.0)])
    lon, lat = _track(x, np.zeros(20))
    first, second = stitch(lon, lat, T0 + t, frame=FRAME)
    assert (first.starts_because, second.starts_because) == ("start", reason)
    assert first.indices.tolist() == list(range(10)) and second.indices.tolist() == list(
        range(10, 20)
    )


def test_recorded_heading_that_flips_splits() -> None:
    """Frames whose own heading turns round between two fast frames are two sequences."""
    lon, lat = _track(np.arange(20) * 15.0, np.zeros(20))
    start = datetime.fromtimestamp(T0, UTC)
    points = [
        TrackPoint(lo, la, start + timedelta(seconds=i), heading_deg=90.0 if i < 12 else 270.0)
        for i, (lo, la) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True))
    ]
    sequences = stitch_points(points, frame=FRAME)
    assert [s.starts_because for s in sequences] == ["start", "heading change"]
    assert sequences[1].indices[0] == 12


def test_gentle_turns_do_not_split() -> None:
    """A full circle of 150 m radius driven at 10 m/s stays one sequence."""
    angle = np.arange(95) * 10.0 / 150.0
    lon, lat = _track(150 * np.sin(angle), 150 * (1 - np.cos(angle)))
    assert len(stitch(lon, lat, T0 + np.arange(95.0), frame=FRAME)) == 1


def test_bad_coordinates_belong_to_no_sequence() -> None:
    """NaN or out-of-range coordinates are left out; the rest keep their input indices."""
    lon, lat = _track(np.arange(6) * 10.0, np.zeros(6))
    lon[1], lat[3], lon[4] = np.nan, np.nan, 200.0
    (seq,) = stitch(lon, lat, T0 + np.arange(6.0), frame=FRAME)
    assert seq.indices.tolist() == [0, 2, 5]
    assert stitch(np.array([np.nan]), np.array([np.nan]), np.array([T0])) == []


def test_points_are_put_in_time_order() -> None:
    """Frames given out of order are stitched in time order (indices still refer to the input)."""
    lon, lat = _track(np.arange(5) * 10.0, np.zeros(5))
    order = np.array([3, 0, 4, 1, 2])
    (seq,) = stitch(lon[order], lat[order], T0 + order.astype(float), frame=FRAME)
    assert seq.indices.tolist() == [1, 3, 4, 0, 2]
    assert np.all(_off(seq.heading_deg, 90.0) < 0.5)


def test_without_times_order_is_kept_and_speed_unknown() -> None:
    """A track without times keeps its order; headings are found, speeds are NaN."""
    lon, lat = _track(np.zeros(8), np.arange(8) * 10.0)
    (seq,) = stitch(lon, lat, np.full(8, np.nan), frame=FRAME)
    assert seq.indices.tolist() == list(range(8))
    assert np.isnan(seq.speed_mps).all()
    assert np.all(_off(seq.heading_deg, 0.0) < 0.5)


def test_single_point_and_repeated_times() -> None:
    """One point is one sequence without a heading; fixes sharing a time are not a crash."""
    lon, lat = _track(np.array([0.0]), np.array([0.0]))
    (one,) = stitch(lon, lat, np.array([T0]), frame=FRAME)
    assert one.indices.tolist() == [0] and np.isnan(one.heading_deg).all()
    lon, lat = _track(np.arange(4) * 5.0, np.zeros(4))
    (seq,) = stitch(lon, lat, np.full(4, T0), frame=FRAME, options=SequenceOptions())
    assert len(seq.indices) == 4 and np.isfinite(seq.smooth_x_m).all()


def test_the_same_drive_smooths_to_the_same_bits_whenever_it_was_recorded() -> None:
    """Frame times in microseconds, shifted by whole microseconds: the smoothed track is equal bit
    for bit (POSIX seconds near 1.8e9 carry float error that depends on the absolute time)."""
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.uniform(3.0, 5.0, 60))
    y = rng.normal(0.0, 0.3, 60)
    lon, lat = _track(x, y)
    steps_us = np.cumsum(rng.integers(350_000, 650_000, 60))
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    tracks = []
    for shift_us in rng.integers(0, 10**12, 12):
        first = start + timedelta(microseconds=int(shift_us))
        points = [
            TrackPoint(float(lo), float(la), first + timedelta(microseconds=int(us)))
            for lo, la, us in zip(lon, lat, steps_us, strict=True)
        ]
        (seq,) = stitch_points(points, frame=FRAME)
        tracks.append(np.concatenate([seq.smooth_x_m, seq.smooth_y_m, seq.heading_deg]))
    assert all(np.array_equal(track, tracks[0]) for track in tracks)
