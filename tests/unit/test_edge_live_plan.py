"""Live capture decides frame by frame what `edge process` decides over the whole recording: the
same poses as fixes arrive, the same candidates in the same order with the same distances."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from shapely.geometry import shape

from edge.gnss.fix import Fix
from edge.keyframes import KeyframeRules, PrivacyZones, plan_keyframes
from edge.liveplan import LivePlanner
from edge.livetrack import LiveTrack
from edge.track import Pose, Track

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
FPS = 30.0
RULES = KeyframeRules(spacing_m=4.0, trim_m=30.0)


def receiver(seconds: int = 120, *, with_speed: bool = True) -> list[Fix]:
    """A 1 Hz receiver on a car that drives, stops for 12 s, loses GNSS for 5 s, reports one bad
    fix (HDOP 9), and turns through north; speeds vary from second to second."""
    rng = np.random.default_rng(3)
    fixes, north, east = [], 0.0, 0.0
    for t in range(seconds):
        speed = 0.0 if 40 <= t < 52 else float(rng.uniform(4.0, 14.0))
        course = (350.0 + 0.4 * t) % 360.0
        north += speed * math.cos(math.radians(course))
        east += speed * math.sin(math.radians(course))
        if 70 <= t < 75:
            continue
        fixes.append(
            Fix(
                START + timedelta(seconds=t),
                24.94 + east / 55_000,
                60.17 + north / 111_000,
                altitude_m=20.0,
                speed_mps=speed if with_speed else None,
                course_deg=course if with_speed else None,
                hdop=9.0 if t == 90 else 1.0,
                satellites=9,
                fix_mode=3,
            )
        )
    return fixes


def frame_times(fixes: list[Fix]) -> list[float]:
    """Frames from half a second before the first fix to a second after the last."""
    first, last = fixes[0].time.timestamp(), fixes[-1].time.timestamp()
    return list(first - 0.5 + np.arange(int((last - first + 1.5) * FPS)) / FPS)


def live_poses(fixes: list[Fix], times: list[float]) -> list[Pose]:
    """Poses as live capture gets them: fixes arrive one by one, each frame is placed as soon as
    it is ready, the rest once the receiver has said its last."""
    track, poses, waiting = LiveTrack(), [], list(times)
    for fix in fixes:
        track.add([fix])
        ready = [t for t in waiting if track.ready(t)]
        if ready:
            poses += track.poses(ready, complete=False)
            waiting = waiting[len(ready) :]
    return poses + track.poses(waiting, complete=True)


@pytest.mark.parametrize("with_speed", [True, False])
def test_live_poses_equal_the_whole_tracks(with_speed: bool) -> None:
    """With speed and course from the receiver every pose is bit for bit the whole track's; from
    positions alone (speeds by differences) they agree to rounding."""
    fixes = receiver(with_speed=with_speed)
    times = frame_times(fixes)
    live, whole = live_poses(fixes, times), Track(fixes).poses(np.array(times))
    if with_speed:
        assert live == whole
    else:
        assert [p.problem for p in live] == [p.problem for p in whole]
        for a, b in zip(live, whole, strict=True):
            assert a.speed_mps == pytest.approx(b.speed_mps, rel=1e-9, abs=1e-9)
            assert a.heading_deg == pytest.approx(b.heading_deg, rel=1e-9, abs=1e-7)


def test_an_instant_is_ready_once_no_later_fix_can_change_it() -> None:
    """The fix after an instant settles it when it carries speed and course; a fix without them
    needs one more after it (speed then comes from the positions around it)."""
    first, second, third = receiver(3)
    track = LiveTrack()
    track.add([first])
    assert not track.ready(first.time.timestamp() + 0.5)
    track.add([second])
    assert track.ready(first.time.timestamp() + 0.5)
    bare = LiveTrack()
    bare.add([first, replace(second, speed_mps=None)])
    assert not bare.ready(first.time.timestamp() + 0.5)
    bare.add([third])
    assert bare.ready(first.time.timestamp() + 0.5)


def test_the_live_planner_picks_the_candidates_plan_keyframes_picks() -> None:
    """Frame by frame, the same candidates (position, first frame, distance) and the same
    fallback windows as the plan of the whole trip; the candidates the plan leaves out at the
    trip's end are exactly those past `travelled - trim_m`."""
    fixes = receiver()
    poses = Track(fixes).poses(np.array(frame_times(fixes)))
    zones = PrivacyZones(
        shape(
            {
                "type": "Polygon",
                "coordinates": [
                    [[24.9, 60.1718], [25.0, 60.1718], [25.0, 60.1722], [24.9, 60.1722]]
                ],
            }
        )
    )
    plan = plan_keyframes(poses, RULES, zones)
    planner = LivePlanner(RULES, zones)
    windows: dict[int, list[int]] = {}
    first: dict[int, tuple[int, float]] = {}
    for index, pose in enumerate(poses):
        candidate = planner.step(index, pose)
        if candidate is not None:
            windows.setdefault(candidate.position, []).append(index)
            first.setdefault(candidate.position, (candidate.frame_index, candidate.travelled_m))
    assert planner.travelled_m == plan.travelled_m
    kept = {p: v for p, v in first.items() if v[1] <= planner.travelled_m - RULES.trim_m}
    assert kept == {c.position: (c.frame_index, c.travelled_m) for c in plan.candidates}
    assert len(plan.candidates) > 50 and plan.skipped["privacy zone"] > 0
    for c in plan.candidates:
        assert windows[c.position] == list(range(c.frame_index, c.last_index + 1))


def braking_to_a_stop(*, doppler: bool) -> list[Fix]:
    """A 1 Hz receiver on a car at 6 m/s that brakes to a stop, stands 5 s and pulls away, with
    its Doppler speed reported or not (positions are exact)."""
    speeds = [6.0, 6.0, 6.0, 4.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 3.0, 4.5, 6.0, 6.0]
    steps = (np.array(speeds[1:]) + np.array(speeds[:-1])) / 2
    north = np.concatenate([[0.0], np.cumsum(steps)])
    return [
        Fix(
            START + timedelta(seconds=t),
            24.94,
            60.17 + float(metres) / 111_000,
            speed_mps=speed if doppler else None,
            course_deg=0.0 if doppler else None,
            hdop=1.0,
            satellites=9,
            fix_mode=3,
        )
        for t, (speed, metres) in enumerate(zip(speeds, north, strict=True))
    ]


def test_braking_into_a_stop_counts_where_the_receiver_reports_its_speed() -> None:
    """The distance is the odometry the server places keyframes by: with Doppler speed (near
    zero while standing) it follows the car until it nearly stands; from positions alone a
    stretch counts only where every fix around it says moving, which loses most of the second
    of braking and of pulling away. The live planner adds up the very same floats."""
    driven = 6.0 + 6.0 + 5.0 + 3.0 + 1.0 + 0.75 + 2.25 + 3.75 + 5.25 + 6.0  # the trapezoids
    for doppler, lost in ((True, (0.2, 0.6)), (False, (2.0, 4.0))):
        fixes = braking_to_a_stop(doppler=doppler)
        poses = Track(fixes).poses(np.array(frame_times(fixes)[15:-30]))
        total = float(plan_keyframes(poses, RULES).travelled_m)
        assert lost[0] < driven - total < lost[1], (doppler, total)
        planner = LivePlanner(RULES)
        for index, pose in enumerate(poses):
            planner.step(index, pose)
        assert planner.travelled_m == total
