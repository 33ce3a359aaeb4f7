"""Routes through the road graph and how the virtual vehicle moves along them."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from roadswarm.sim.motion import ACCEL_MPS2, BRAKE_MPS2, choose_stops, speed_profile, timeline
from roadswarm.sim.paint import RoadShape
from roadswarm.sim.roads import SPEED_KMH
from roadswarm.sim.route import RouteStep, lane_path, outgoing_edges, random_route
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
