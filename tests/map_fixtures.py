"""Drives on a road network for the map-matching tests: a walk along directed segments, sampled
at a fixed speed and rate, with seeded noise, and the truth of every fix."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from mapbuilder.geo import FloatArray
from mapbuilder.roads.network import RoadNetwork

START_S = 1_780_000_000.0  # POSIX seconds of the first fix


@dataclass(frozen=True)
class Drive:
    """Fixes (WGS84, POSIX seconds) and the directed edge each was really on."""

    lon: FloatArray
    lat: FloatArray
    time_s: FloatArray
    true_edge: list[int]

    def truth(self, network: RoadNetwork) -> list[tuple[str, str]]:
        """(segment id, direction) of every fix."""
        return [
            (network.segments[e // 2].segment_id, "forward" if e % 2 == 0 else "backward")
            for e in self.true_edge
        ]


def clock(n: int, rate_hz: float = 1.0) -> FloatArray:
    """POSIX seconds of `n` fixes at `rate_hz` from START_S."""
    return np.asarray(START_S + np.arange(n) / rate_hz, dtype=np.float64)


def walk(network: RoadNetwork, length_m: float, seed: int) -> list[int]:
    """Directed edges of a random walk without U-turns (except at dead ends), obeying one-ways."""
    g = network.graph
    rng = random.Random(seed)
    usable = np.flatnonzero(g.edge_usable)
    edges = [int(rng.choice(usable))]
    travelled = float(g.edge_length_m[edges[0]])
    while travelled < length_m:
        here = edges[-1]
        options = [int(e) for e in usable if g.edge_from[e] == g.edge_to[here] and e != here ^ 1]
        options = options or [here ^ 1]
        edges.append(rng.choice(options))
        travelled += float(g.edge_length_m[edges[-1]])
    return edges


def drive(
    network: RoadNetwork,
    edges: list[int],
    *,
    speed_mps: float = 10.0,
    rate_hz: float = 1.0,
    noise_m: float = 5.0,
    seed: int = 0,
) -> Drive:
    """Fixes along the centreline of `edges` at a constant speed, each displaced by independent
    Gaussian errors of `noise_m` per axis."""
    length = network.local_length_m[np.array(edges) // 2]
    starts = np.concatenate([[0.0], np.cumsum(length)[:-1]])
    s = np.arange(0.0, float(length.sum()), speed_mps / rate_hz)
    k = np.searchsorted(starts, s, "right") - 1
    edge = np.array(edges)[k]
    pos = s - starts[k]
    along = np.where(edge % 2 == 0, pos, length[k] - pos)
    x, y = network.point_at(edge // 2, along)
    rng = np.random.default_rng(seed)
    x, y = x + rng.normal(0.0, noise_m, len(x)), y + rng.normal(0.0, noise_m, len(y))
    lon, lat = network.frame.to_wgs84(x, y)
    return Drive(lon, lat, clock(len(s), rate_hz), [int(e) for e in edge])
