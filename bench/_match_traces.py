"""Simulated GNSS traces with their truth, for the map-matching benchmark: a random route through
a road network driven by the simulator's vehicle model and sampled by its GNSS receiver model."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import osmium

from mapbuilder.geo import FloatArray
from mapbuilder.roads.network import IntArray, RoadNetwork
from roadswarm.sim.gnss import GnssOptions, simulate_fixes
from roadswarm.sim.motion import choose_stops, speed_profile, timeline
from roadswarm.sim.paint import RoadShape, intersection_nodes
from roadswarm.sim.roads import SPEED_KMH
from roadswarm.sim.route import SAMPLE_M, RouteStep, TurnRule, lane_path, random_route

Noise = Literal["clean", "white", "correlated"]
START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
BIN_M = 1.0  # resolution of the route comparison by length


@dataclass(frozen=True)
class Trace:
    """GNSS fixes of one drive and what was really driven: per fix the directed segment
    (segment id, +1 forward / -1 backward), and the driven route as 1 m bins."""

    name: str
    lon: FloatArray
    lat: FloatArray
    time_s: FloatArray
    true_segment: list[tuple[str, int]]
    true_bins: frozenset[tuple[str, int, int]]


def turn_restrictions(osm: Path, network: RoadNetwork) -> TurnRule:
    """OSM `no_*` and `only_*` turn restrictions (from way, via node, to way) as a rule for the
    route planner, so simulated drivers turn only where Meili's router lets a car turn; dead
    ends are not entered either (where there is another way on)."""
    rules: dict[tuple[int, int], list[tuple[bool, int]]] = {}
    for relation in osmium.FileProcessor(str(osm), osmium.osm.RELATION):
        if not isinstance(relation, osmium.osm.Relation):
            continue
        kind = str(relation.tags.get("restriction", ""))
        roles = {(m.role, m.type): int(m.ref) for m in relation.members}
        from_way, via, to_way = (
            roles.get(k, -1) for k in (("from", "w"), ("via", "n"), ("to", "w"))
        )
        if relation.tags.get("type") != "restriction" or -1 in (from_way, via, to_way):
            continue
        if kind.startswith(("no_", "only_")):
            rules.setdefault((from_way, via), []).append((kind.startswith("only_"), to_way))
    source = {s.segment_id: s.source_id for s in network.segments}
    ends = Counter(n for s in network.segments for n in (s.start_node, s.end_node))

    def allowed(step: RouteStep, road: RoadShape, direction: int) -> bool:
        exit_node = road.end_node if direction > 0 else road.start_node
        if ends[exit_node] == 1:
            return False  # into a dead end only to turn round: a random walk does, drivers do not
        to_way = source[road.segment_id]
        for only, way in rules.get((source[step.segment_id], step.exit_node), []):
            if only != (to_way == way):
                return False
        return True

    return allowed


def gnss_options(rate_hz: float, noise: Noise, sigma_m: float) -> GnssOptions:
    """No error, independent errors of `sigma_m` per axis, or a Gauss-Markov walk of that size
    with a 10 s correlation time."""
    if noise == "clean":
        return GnssOptions(rate_hz=rate_hz, noise_m=0.0, white_noise_m=0.0)
    if noise == "white":
        return GnssOptions(rate_hz=rate_hz, noise_m=0.0, white_noise_m=sigma_m)
    return GnssOptions(rate_hz=rate_hz, noise_m=sigma_m, correlation_s=10.0, white_noise_m=0.0)


def simulate_trace(
    network: RoadNetwork,
    roads: list[RoadShape],
    *,
    seed: int,
    minutes: float,
    rate_hz: float,
    noise: Noise,
    sigma_m: float = 5.0,
    turn_allowed: TurnRule | None = None,
) -> Trace:
    """A random drive of `minutes` (with junction and traffic stops) sampled at `rate_hz`."""
    rng = random.Random(seed)
    route = random_route(roads, minutes * 60 * 16.0 + 300.0, rng, turn_allowed=turn_allowed)
    while any(a.segment_id == b.segment_id for a, b in itertools.pairwise(route)):
        # A U-turn, where the walk was cornered: no driver's route, so draw another.
        route = random_route(roads, minutes * 60 * 16.0 + 300.0, rng, turn_allowed=turn_allowed)
    path = lane_path(route, {k: float(v) for k, v in SPEED_KMH.items()})
    junctions = set(intersection_nodes(roads))
    changes = np.flatnonzero(np.diff(path.step_index)) + 1
    at_junction = [
        int(i) for i in changes if route[int(path.step_index[i]) - 1].exit_node in junctions
    ]
    stops = choose_stops(path, at_junction, minutes, rng)
    clock = timeline(path, speed_profile(path, stops), stops)
    duration = min(minutes * 60.0, clock.duration_s)
    dense_t = np.arange(0.0, duration + 1e-9, 0.1 / rate_hz)
    s = clock.distance_at(dense_t)
    x, y = np.interp(s, path.s_m, path.x_m), np.interp(s, path.s_m, path.y_m)
    heading = np.interp(s, path.s_m, np.degrees(np.unwrap(np.radians(path.heading_deg)))) % 360
    fixes = simulate_fixes(
        dense_t,
        x,
        y,
        np.zeros_like(x),
        np.gradient(s, dense_t),
        heading,
        frame=network.frame,
        start_time=START,
        options=gnss_options(rate_hz, noise, sigma_m),
        rng=np.random.default_rng(seed),
    )
    epoch = np.array([(f.time - START).total_seconds() for f in fixes])
    sample = np.clip(np.searchsorted(path.s_m, clock.distance_at(epoch)), 0, len(path.s_m) - 1)
    steps = path.step_index[sample]
    true_segment = [(route[i].segment_id, route[i].direction) for i in steps.tolist()]
    name = f"seed{seed}-{rate_hz:g}Hz-{noise}"
    return Trace(
        name,
        np.array([f.lon for f in fixes]),
        np.array([f.lat for f in fixes]),
        epoch + START.timestamp(),
        true_segment,
        _route_bins(network, route, path.step_index, sample[0], sample[-1]),
    )


def _route_bins(
    network: RoadNetwork, route: list[RouteStep], step_index: IntArray, first: int, last: int
) -> frozenset[tuple[str, int, int]]:
    """1 m bins (segment, direction, offset from the segment's first point) of the route driven
    between path samples `first` and `last` (samples are SAMPLE_M apart along each segment)."""
    bins: set[tuple[str, int, int]] = set()
    for i in range(int(step_index[first]), int(step_index[last]) + 1):
        on_step = np.flatnonzero(step_index == i)
        driven = on_step[(on_step >= first) & (on_step <= last)]
        length = float(network.length_m[network.index[route[i].segment_id]])
        lo, hi = ((driven[[0, -1]] - on_step[0]) * SAMPLE_M).tolist()
        if i < int(step_index[last]):
            hi = length  # the step was driven to its end
        a, b = (lo, hi) if route[i].direction > 0 else (length - hi, length - lo)
        bins.update(
            (route[i].segment_id, route[i].direction, k)
            for k in range(int(max(a, 0.0) // BIN_M), int(min(b, length - 1e-9) // BIN_M) + 1)
        )
    return frozenset(bins)
