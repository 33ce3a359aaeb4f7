"""Random routes through the directed road graph, and the lane-following path they make."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from roadswarm.sim.errors import RouteError
from roadswarm.sim.paint import RoadShape

FloatArray = NDArray[np.float64]
SAMPLE_M = 0.5
CORNER_SMOOTHING_M = 4.0  # of the lane the car follows, not of its path
# A car's path bends no tighter than its turning circle (about 5 m for a passenger car), and
# drivers steer towards a point a few metres ahead: a 90-degree corner takes several metres.
MIN_TURN_RADIUS_M = 5.0
LOOKAHEAD_M = 6.0


@dataclass(frozen=True)
class RouteStep:
    """One segment of a route, driven forward (+1, along its digitisation) or backward (-1)."""

    segment_id: str
    direction: int
    road: RoadShape

    @property
    def xy(self) -> FloatArray:
        points = np.array(self.road.xy, dtype=np.float64)
        return points if self.direction > 0 else points[::-1]

    @property
    def exit_node(self) -> int:
        return self.road.end_node if self.direction > 0 else self.road.start_node


def outgoing_edges(roads: list[RoadShape]) -> dict[int, list[tuple[RoadShape, int]]]:
    graph: dict[int, list[tuple[RoadShape, int]]] = defaultdict(list)
    for road in roads:
        graph[road.start_node].append((road, 1))
        if not road.oneway:
            graph[road.end_node].append((road, -1))
    return graph


def _largest_strongly_connected(graph: dict[int, list[tuple[RoadShape, int]]]) -> set[int]:
    """Nodes of the largest strongly connected part: from each, every other is reachable and back.

    Routes stay inside it, so a drive never ends on a one-way street that leaves the extract.
    """
    reverse: dict[int, list[int]] = defaultdict(list)
    forward: dict[int, list[int]] = defaultdict(list)
    for node, edges in graph.items():
        for road, direction in edges:
            target = road.end_node if direction > 0 else road.start_node
            forward[node].append(target)
            reverse[target].append(node)
    order = _finish_order(forward)
    seen: set[int] = set()
    best: set[int] = set()
    for node in reversed(order):  # Kosaraju: components of the reversed graph in finish order
        if node not in seen:
            component = _reachable(node, reverse, seen)
            best = component if len(component) > len(best) else best
    return best


def _finish_order(graph: dict[int, list[int]]) -> list[int]:
    order: list[int] = []
    visited: set[int] = set()
    for root in list(graph):
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(graph[root]))]
        while stack:
            node, children = stack[-1]
            child = next((c for c in children if c not in visited), None)
            if child is None:
                stack.pop()
                order.append(node)
            else:
                visited.add(child)
                stack.append((child, iter(graph[child])))
    return order


def _reachable(start: int, graph: dict[int, list[int]], seen: set[int]) -> set[int]:
    component, stack = {start}, [start]
    seen.add(start)
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                component.add(nxt)
                stack.append(nxt)
    return component


TurnRule = Callable[[RouteStep, RoadShape, int], bool]


def random_route(
    roads: list[RoadShape],
    length_m: float,
    rng: random.Random,
    *,
    turn_allowed: TurnRule | None = None,
) -> list[RouteStep]:
    """A drive of at least `length_m` that turns at random and avoids U-turns except at dead ends;
    `turn_allowed(step, road, direction)`, where given, rules out turns (OSM turn restrictions)
    unless no turn would be left."""
    full = outgoing_edges(roads)
    core = _largest_strongly_connected(full)
    graph = {
        node: [(r, d) for r, d in edges if (r.end_node if d > 0 else r.start_node) in core]
        for node, edges in full.items()
        if node in core
    }
    edges = sorted(
        (e for node_edges in graph.values() for e in node_edges),
        key=lambda e: (e[0].segment_id, e[1]),
    )
    starts = [e for e in edges if e[0].road_class != "service"] or edges
    if not starts:
        msg = "the world has no connected roads to drive on: rebuild it from an extract with roads"
        raise RouteError(msg)
    first, direction = rng.choice(starts)
    route = [RouteStep(first.segment_id, direction, first)]
    travelled = _length(route[-1].xy)
    while travelled < length_m:
        here = route[-1]
        options = [(r, d) for r, d in graph[here.exit_node] if r.segment_id != here.segment_id]
        options = options or graph[here.exit_node]
        if turn_allowed is not None:
            options = [(r, d) for r, d in options if turn_allowed(here, r, d)] or options
        # Prefer bigger roads a little, as drivers do; service roads are rarely taken.
        weights = [0.2 if r.road_class == "service" else 1.0 for r, _ in options]
        road, direction = rng.choices(options, weights=weights)[0]
        route.append(RouteStep(road.segment_id, direction, road))
        travelled += _length(route[-1].xy)
    return route


def _length(xy: FloatArray) -> float:
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())


@dataclass(frozen=True)
class DrivePath:
    """The vehicle's path sampled every `SAMPLE_M`: position, heading, and which route step it is on."""

    s_m: FloatArray
    x_m: FloatArray
    y_m: FloatArray
    heading_deg: FloatArray
    curvature_per_m: FloatArray
    step_index: NDArray[np.int64]
    speed_limit_mps: FloatArray


def lane_path(route: list[RouteStep], speed_kmh: dict[str, float]) -> DrivePath:
    """Follow the centre of the right-hand lane as a car can: steered towards a point
    `LOOKAHEAD_M` ahead on the lane (pure pursuit), never tighter than `MIN_TURN_RADIUS_M`, so
    corners are rounded over several metres and a dead end is turned round in a loop."""
    lane, lane_step, limit = _lane_centre(route, speed_kmh)
    x, y, heading, curvature, nearest = _pursue(lane)
    s = np.arange(x.size, dtype=np.float64) * SAMPLE_M
    return DrivePath(s, x, y, heading, curvature, lane_step[nearest], limit[nearest])


def _lane_centre(
    route: list[RouteStep], speed_kmh: dict[str, float]
) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
    """The right-hand lane's centre every `SAMPLE_M`, which route step each point is on, and the
    speed limit there."""
    centre, step_index, offset, limit = _resampled_centreline(route, speed_kmh)
    window = max(3, int(CORNER_SMOOTHING_M / SAMPLE_M))
    smooth = np.stack(
        [_moving_average(centre[:, 0], window), _moving_average(centre[:, 1], window)], 1
    )
    tangent = np.gradient(smooth, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    right = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return smooth + right * _moving_average(offset, 4 * window)[:, None], step_index, limit


def _pursue(
    lane: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
    """Drive along `lane` by pure pursuit in steps of `SAMPLE_M`: positions, headings (degrees
    clockwise from north), curvature, and the lane point nearest each position."""
    start = lane[min(1, len(lane) - 1)] - lane[0]
    heading = float(np.arctan2(start[0], start[1]))
    here, at = lane[0].astype(np.float64), 0
    points, headings, curvatures, nearest = [], [], [], []
    # A loop round a dead end is longer than the lane there, but not four times the route.
    for _ in range(4 * len(lane)):
        at = _nearest_ahead(lane, here, at)
        points.append(here)
        headings.append(heading)
        nearest.append(at)
        curvature = 0.0 if at >= len(lane) - 1 else _steer(lane, here, heading, at)
        curvatures.append(abs(curvature))
        if at >= len(lane) - 1:
            xy = np.array(points, np.float64)
            degrees = np.degrees(np.array(headings, np.float64)) % 360.0
            return xy[:, 0], xy[:, 1], degrees, np.array(curvatures), np.array(nearest, np.int64)
        heading += curvature * SAMPLE_M
        here = here + SAMPLE_M * np.array([np.sin(heading), np.cos(heading)])
    msg = "the simulated vehicle could not follow its route to the end: report this as a bug"
    raise RouteError(msg)


def _steer(lane: FloatArray, here: FloatArray, heading: float, at: int) -> float:
    """Curvature (1/m, positive to the right) that brings the car onto the lane point
    `LOOKAHEAD_M` ahead, at most that of the turning circle."""
    ahead = lane[at : at + int(4 * LOOKAHEAD_M / SAMPLE_M)]
    far = np.flatnonzero(np.hypot(*(ahead - here).T) >= LOOKAHEAD_M)
    target = ahead[far[0]] if far.size else ahead[-1]
    bearing = np.arctan2(target[0] - here[0], target[1] - here[1])
    alpha = (bearing - heading + np.pi) % (2 * np.pi) - np.pi
    tightest = 1.0 / MIN_TURN_RADIUS_M
    if abs(alpha) >= np.pi / 2:  # behind the car (the other lane of a dead end): turn round
        return float(np.sign(alpha) * tightest)
    return float(np.clip(2 * np.sin(alpha) / LOOKAHEAD_M, -tightest, tightest))


def _nearest_ahead(lane: FloatArray, here: FloatArray, at: int) -> int:
    """The lane point nearest `here` among the next few after `at` (never going back, so the
    far side of a dead end is not mistaken for the near one)."""
    window = lane[at : at + int(2 * LOOKAHEAD_M / SAMPLE_M)]
    return at + int(np.argmin(np.hypot(*(window - here).T)))


def _resampled_centreline(
    route: list[RouteStep], speed_kmh: dict[str, float]
) -> tuple[FloatArray, NDArray[np.int64], FloatArray, FloatArray]:
    points, steps, offsets, limits = [], [], [], []
    for i, step in enumerate(route):
        xy = step.xy
        seg_s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        samples = np.arange(0.0 if i == 0 else SAMPLE_M / 2, seg_s[-1], SAMPLE_M)
        points.append(
            np.stack([np.interp(samples, seg_s, xy[:, 0]), np.interp(samples, seg_s, xy[:, 1])], 1)
        )
        steps.append(np.full(len(samples), i, np.int64))
        offsets.append(np.full(len(samples), _right_lane_offset(step.road)))
        limits.append(np.full(len(samples), speed_kmh.get(step.road.road_class, 30.0) / 3.6))
    return (
        np.concatenate(points),
        np.concatenate(steps),
        np.concatenate(offsets),
        np.concatenate(limits),
    )


def _right_lane_offset(road: RoadShape) -> float:
    """Metres to the right of the centreline where the rightmost lane's centre is."""
    if road.oneway and road.lanes == 1:
        return 0.0
    lane_w = road.width_m / road.lanes
    return road.width_m / 2 - lane_w / 2


def _moving_average(values: FloatArray, window: int) -> FloatArray:
    if len(values) < 2:
        return values.astype(np.float64)
    window = min(window, len(values))
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")
