"""GPS plausibility of a sequence, judged point by point against the last plausible one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.plausibility import TrackPoint, implausible_points, time_problem
from ingest.settings import ValidationSettings

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
SETTINGS = ValidationSettings()
METRES_PER_DEGREE = 111_320.0


def _track(count: int, *, step_m: float = 10.0, dt_s: float = 1.0) -> list[TrackPoint]:
    return [
        TrackPoint(
            i,
            START + timedelta(seconds=i * dt_s),
            60 + i * step_m / METRES_PER_DEGREE,
            24.9,
            step_m / dt_s,
        )
        for i in range(count)
    ]


def _moved(point: TrackPoint, north_m: float) -> TrackPoint:
    return TrackPoint(
        point.index, point.time, point.lat + north_m / METRES_PER_DEGREE, point.lon, point.speed_mps
    )


def test_a_steady_drive_is_plausible() -> None:
    """Ten metres a second, for a minute: nothing to reject."""
    assert implausible_points(_track(60), SETTINGS) == {}


def test_gnss_noise_is_not_a_teleport() -> None:
    """A 20 m jump between frames 0.4 s apart is within the noise allowance."""
    points = _track(10, step_m=4, dt_s=0.4)
    points[5] = _moved(points[5], 20)
    assert implausible_points(points, SETTINGS) == {}


def test_one_wild_fix_is_rejected_alone() -> None:
    """A point 3 km off is rejected; the next one is judged against the last good one and passes."""
    points = _track(10)
    points[4] = _moved(points[4], 3000)
    rejected = implausible_points(points, SETTINGS)
    assert list(rejected) == [4]
    assert rejected[4].reason == "teleport"


def test_a_bad_first_fix_costs_only_a_few_points() -> None:
    """When the anchor itself was wrong, the track re-anchors after three consistent points."""
    points = _track(12)
    points[0] = _moved(points[0], -5000)
    assert sorted(implausible_points(points, SETTINGS)) == [1, 2, 3]


def test_time_going_backwards_is_rejected() -> None:
    """A capture time not after the anchor's is `time_order`."""
    points = _track(5)
    points[3] = TrackPoint(3, points[1].time, points[3].lat, points[3].lon, 10.0)
    assert {i: r.reason for i, r in implausible_points(points, SETTINGS).items()} == {
        3: "time_order"
    }


def test_impossible_acceleration_is_rejected() -> None:
    """Doppler speed jumping from 10 to 40 m/s in one second is beyond a car."""
    points = _track(5)
    points[2] = TrackPoint(2, points[2].time, points[2].lat, points[2].lon, 40.0)
    assert implausible_points(points, SETTINGS)[2].reason == "implausible_acceleration"


def test_capture_time_is_judged_against_arrival() -> None:
    """Captured after arrival is `future_capture`, long before it `stale_capture`, else fine."""
    point = _track(1)[0]
    assert time_problem(point, START + timedelta(hours=1), SETTINGS) is None
    future = time_problem(point, START - timedelta(hours=1), SETTINGS)
    assert future is not None and future.reason == "future_capture"
    stale = time_problem(point, START + timedelta(days=60), SETTINGS)
    assert stale is not None and stale.reason == "stale_capture"
