"""Routes through the road graph and how the virtual vehicle moves along them."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from roadswarm.sim.motion import ACCEL_MPS2, BRAKE_MPS2, choose_stops, speed_profile, timeline
from roadswarm.sim.paint import RoadShape
from roadswarm.sim.roads import SPEED_KMH
from roadswarm.sim.route import (
    MIN_TURN_RADIUS_M,
    SAMPLE_M,
    RouteStep,
    lane_path,
    outgoing_edges,
    random_route,
)
from roadswarm.sim.world import World

LIMITS = {k: float(v) for k, v in SPEED_KMH.items()}


def entry_node(step: RouteStep) -> int:
    return step.road.start_node if step.direction > 0 else step.road.end_node


@pytest.mark.parametrize("seed", range(8))
def test_routes_are_connected_legal_and_long_enough(grid_world: World, seed: int) -> None:
    """Each step starts where the last ended, one-way streets are driven forward, and U-turns
    happen only where nothing else leaves the node."""
    route = random_route(grid_world.roads, 2000.0, random.Random(seed))
    leaving = outgoing_edges(grid_world.roads)
    assert sum(float(step.road.line.length) for step in route) >= 2000.0
    for before, after in itertools.pairwise(route):
        assert before.exit_node == entry_node(after)
        if after.segment_id == before.segment_id:
            others = {r.segment_id for r, _ in leaving[before.exit_node]} - {before.segment_id}
            assert not others, f"U-turn at node {before.exit_node} although {others} leave it"
    assert all(step.direction == 1 for step in route if step.road.oneway)


def test_one_way_exit_from_the_network_is_never_entered() -> None:
    """A one-way street leading out of the network is left out, so a drive cannot get stuck."""
    loop = [
        RoadShape("a", "residential", False, 2, 6.0, 1, 2, ((0.0, 0.0), (100.0, 0.0))),
        RoadShape("b", "residential", False, 2, 6.0, 2, 3, ((100.0, 0.0), (100.0, 100.0))),
        RoadShape("c", "residential", False, 2, 6.0, 3, 1, ((100.0, 100.0), (0.0, 0.0))),
        RoadShape("exit", "residential", True, 1, 3.0, 2, 9, ((100.0, 0.0), (200.0, 0.0))),
    ]
    for seed in range(10):
        route = random_route(loop, 3000.0, random.Random(seed))
        assert "exit" not in {step.segment_id for step in route}


def test_vehicle_keeps_to_the_right_lane(grid_world: World) -> None:
    """On two-way roads the path runs right of the centreline, by about a quarter of the width."""
    route = random_route(grid_world.roads, 1500.0, random.Random(3))
    path = lane_path(route, LIMITS)
    step = next(
        i for i, s in enumerate(route[1:-1], 1) if not s.road.oneway and s.road.line.length > 60
    )
    on_step = np.flatnonzero(path.step_index == step)
    middle = on_step[len(on_step) // 2]
    centre = np.array(route[step].xy)
    heading = np.radians(path.heading_deg[middle])
    right = np.array([np.cos(heading), -np.sin(heading)])
    offset = float((np.array([path.x_m[middle], path.y_m[middle]]) - centre[0]) @ right)
    assert offset == pytest.approx(route[step].road.width_m / 4, abs=0.3)


@pytest.mark.parametrize("seed", range(4))
def test_the_path_bends_no_tighter_than_a_turning_circle(grid_world: World, seed: int) -> None:
    """A car cannot turn on the spot: its path is continuous, each step turns it by at most
    what the turning circle allows, and a right-angle corner takes several metres."""
    path = lane_path(random_route(grid_world.roads, 1500.0, random.Random(seed)), LIMITS)
    steps = np.hypot(np.diff(path.x_m), np.diff(path.y_m))
    assert np.allclose(steps, SAMPLE_M, atol=1e-6)
    turns = np.radians((np.diff(path.heading_deg) + 180.0) % 360.0 - 180.0)
    assert np.abs(turns).max() <= SAMPLE_M / MIN_TURN_RADIUS_M + 1e-9
    assert path.curvature_per_m.max() <= 1 / MIN_TURN_RADIUS_M + 1e-9
    # The direction of travel follows the positions (no sideways slide).
    moved = np.degrees(np.arctan2(np.diff(path.x_m), np.diff(path.y_m)))
    assert np.abs((moved - path.heading_deg[1:] + 180.0) % 360.0 - 180.0).max() < 1e-6


def test_a_dead_end_is_turned_round_and_left_in_the_other_lane() -> None:
    """Driven into a dead end and back, the car loops round (no tighter than its turning
    circle) and leaves on the other side of the road, heading back the way it came."""
    road = RoadShape("stub", "residential", False, 2, 6.0, 1, 2, ((0.0, 0.0), (0.0, 120.0)))
    route = [RouteStep("stub", 1, road), RouteStep("stub", -1, road)]
    path = lane_path(route, LIMITS)
    assert path.heading_deg[0] == pytest.approx(0.0, abs=1e-6)
    assert abs((path.heading_deg[-1] - 180.0 + 180.0) % 360.0 - 180.0) < 5.0
    assert path.curvature_per_m.max() <= 1 / MIN_TURN_RADIUS_M + 1e-9
    going = path.x_m[path.y_m < 60.0][:20]
    coming = path.x_m[(path.y_m < 60.0) & (path.step_index == 1)][-20:]
    # Right-hand traffic: east of the centreline going north, west of it coming back.
    assert np.all(going > 1.0) and np.all(coming < -1.0)
    assert path.step_index[0] == 0 and path.step_index[-1] == 1


def test_speed_respects_limits_acceleration_and_stops(grid_world: World) -> None:
    """Speed stays under the limit, changes no faster than the car can, and is zero at stops."""
    rng = random.Random(5)
    route = random_route(grid_world.roads, 1500.0, rng)
    path = lane_path(route, LIMITS)
    stops = choose_stops(path, [len(path.s_m) // 2], 2.0, rng)
    speed = speed_profile(path, stops)
    assert np.all(speed <= path.speed_limit_mps + 1e-9)
    assert speed[0] == 0 and speed[-1] == 0
    assert all(speed[stop.index] == 0 for stop in stops)
    ds = np.diff(path.s_m)
    dv2 = np.diff(speed**2) / (2 * ds)
    assert dv2.max() <= ACCEL_MPS2 + 1e-6 and dv2.min() >= -BRAKE_MPS2 - 1e-6
    clock = timeline(path, speed, stops)
    assert np.all(np.diff(clock.t_s) >= 0) and np.all(np.diff(clock.s_m) >= 0)
    dwell = sum(stop.dwell_s for stop in stops)
    assert clock.duration_s > dwell
