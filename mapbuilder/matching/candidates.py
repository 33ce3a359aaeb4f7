"""Candidate road positions of each observation, from an STRtree of segment pieces, vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from mapbuilder.geo import FloatArray
from mapbuilder.roads.network import IntArray, RoadNetwork


@dataclass(frozen=True)
class Candidates:
    """Directed-edge candidates of observations, grouped by observation: those of observation `j`
    are `offsets[j]:offsets[j + 1]`. `pos_m` runs along the edge in its driving direction."""

    edge: IntArray
    pos_m: FloatArray
    dist_m: FloatArray
    offsets: IntArray
    tangent_x: FloatArray  # unit vector of the driving direction at the candidate
    tangent_y: FloatArray

    def count(self, j: int) -> int:
        """How many candidates observation `j` has."""
        return int(self.offsets[j + 1] - self.offsets[j])


def project(
    px: FloatArray,
    py: FloatArray,
    x0: FloatArray,
    y0: FloatArray,
    x1: FloatArray,
    y1: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Fraction along each piece (0..1) of the nearest point to each point, and the distance."""
    dx, dy = x1 - x0, y1 - y0
    squared = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(squared > 0, ((px - x0) * dx + (py - y0) * dy) / squared, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return t, np.hypot(px - (x0 + t * dx), py - (y0 + t * dy))


def first_of_groups(keys: IntArray) -> IntArray:
    """Positions where a sorted key array starts a new run."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))


class CandidateIndex:
    """An STRtree over every straight piece of a network's segments, in its local metres."""

    def __init__(self, network: RoadNetwork) -> None:
        self.network = network
        p = network.pieces
        coords = np.stack([np.column_stack([p.x0, p.y0]), np.column_stack([p.x1, p.y1])], axis=1)
        self.tree = shapely.STRtree(shapely.linestrings(coords))

    def query(
        self,
        x: FloatArray,
        y: FloatArray,
        *,
        radius_m: float,
        max_candidates: int,
        margin_m: float = np.inf,
    ) -> Candidates:
        """For each observation, the `max_candidates` nearest segments within `radius_m` and not
        much farther than the nearest (d^2 <= nearest^2 + margin_m^2), each once per direction it
        may be driven in."""
        p, net = self.network.pieces, self.network
        obs, piece = self.tree.query(shapely.points(x, y), predicate="dwithin", distance=radius_m)
        t, dist = project(x[obs], y[obs], p.x0[piece], p.y0[piece], p.x1[piece], p.y1[piece])
        segment = p.segment[piece]
        along = p.start_m[piece] + t * p.length_m[piece]
        # The nearest piece of each (observation, segment), then the nearest segments.
        order = np.lexsort((dist, segment, obs))
        first = order[first_of_groups(obs[order] * len(net.segments) + segment[order])]
        first = first[np.lexsort((dist[first], obs[first]))]
        group = first_of_groups(obs[first])
        size = np.diff(np.append(group, len(first)))
        rank = np.arange(len(first)) - np.repeat(group, size)
        nearest = np.repeat(dist[first[group]], size)
        close = dist[first] ** 2 <= nearest**2 + margin_m**2
        chosen = first[(rank < max_candidates) & close]
        return self._directed(len(x), obs[chosen], piece[chosen], along[chosen], dist[chosen])

    def _directed(
        self, n: int, obs: IntArray, piece: IntArray, along: FloatArray, dist: FloatArray
    ) -> Candidates:
        p = self.network.pieces
        segment = p.segment[piece]
        both = self.network.graph.edge_usable[2 * segment + 1]
        length = self.network.local_length_m[segment]
        size = np.maximum(p.length_m[piece], 1e-9)
        tx, ty = (p.x1[piece] - p.x0[piece]) / size, (p.y1[piece] - p.y0[piece]) / size
        order = np.argsort(np.concatenate([obs, obs[both]]), kind="stable")
        owner = np.concatenate([obs, obs[both]])[order]
        return Candidates(
            edge=np.concatenate([2 * segment, 2 * segment[both] + 1])[order],
            pos_m=np.concatenate([along, length[both] - along[both]])[order],
            dist_m=np.concatenate([dist, dist[both]])[order],
            offsets=np.searchsorted(owner, np.arange(n + 1)),
            tangent_x=np.concatenate([tx, -tx[both]])[order],
            tangent_y=np.concatenate([ty, -ty[both]])[order],
        )
