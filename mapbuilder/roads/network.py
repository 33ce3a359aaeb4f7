"""A road network ready for matching: segments, a local metric frame, piece arrays and the directed
graph.

Directed edge `2 * k` drives segment `k` along its digitisation, `2 * k + 1` against it; the second
exists only on two-way segments (`edge_usable`). Geometry is held in metres of a transverse Mercator
frame centred on the network, whose scale error stays below 0.1 % within 250 km of the centre;
`length_m` is the geodesic length on the WGS84 ellipsoid, and offsets reported along a segment are
scaled to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod

from mapbuilder.errors import NoRoadsError
from mapbuilder.geo import FloatArray, LocalFrame
from mapbuilder.roads.segment import RoadSegment

IntArray = NDArray[np.int64]
MIN_EDGE_M = 1e-3  # the shortest-path search treats a zero weight as no edge at all


@dataclass(frozen=True)
class Pieces:
    """Every straight piece of every segment, in local metres: the matcher's search space."""

    x0: FloatArray
    y0: FloatArray
    x1: FloatArray
    y1: FloatArray
    segment: IntArray
    start_m: FloatArray  # distance along its segment (local metres) where the piece begins
    length_m: FloatArray


@dataclass(frozen=True)
class Graph:
    """Directed edges between node indices, plus the shortest edge of each node pair for routing."""

    edge_from: IntArray
    edge_to: IntArray
    edge_length_m: FloatArray
    edge_usable: NDArray[np.bool_]
    pair_from: IntArray
    pair_to: IntArray
    pair_length_m: FloatArray
    pair_edge: IntArray
    node_x: FloatArray
    node_y: FloatArray


class RoadNetwork:
    """Road segments with everything the matcher needs, built once per network."""

    def __init__(self, segments: Sequence[RoadSegment], *, source: str = "") -> None:
        if not segments:
            msg = "a road network needs at least one segment: import a file that holds roads"
            raise NoRoadsError(msg)
        self.segments = tuple(segments)
        self.source = source
        self.index = {s.segment_id: k for k, s in enumerate(self.segments)}
        lon, lat = np.array([p for s in self.segments for p in s.lonlat], dtype=np.float64).T
        self.frame = LocalFrame(
            float((lon.min() + lon.max()) / 2), float((lat.min() + lat.max()) / 2)
        )
        counts = np.array([len(s.lonlat) for s in self.segments])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        x, y = self.frame.to_local(lon, lat)
        self.pieces, self.local_length_m, self.vertex_m = _pieces(x, y, counts, starts)
        self.vertex_x, self.vertex_y = x, y
        self.first_vertex, self.vertex_count = starts, counts
        self.first_piece = np.concatenate([[0], np.cumsum(counts - 1)[:-1]])
        # Pieces laid end to end in segment order: a position on any segment is one number here.
        self.segment_at_m = np.concatenate([[0.0], np.cumsum(self.local_length_m)[:-1]])
        self.piece_at_m = self.segment_at_m[self.pieces.segment] + self.pieces.start_m
        self.length_m = _geodesic_lengths(lon, lat, counts, starts)
        ends = starts + counts - 1
        self.graph = _graph(
            self.segments, self.local_length_m, (x[starts], y[starts]), (x[ends], y[ends])
        )

    @property
    def node_count(self) -> int:
        """How many distinct nodes (intersections and ends) the segments join."""
        return len(self.graph.node_x)

    def point_at(self, segment: IntArray, along_m: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Local x, y of positions `along_m` (local metres from the segment's first point)."""
        along = np.clip(along_m, 0.0, self.local_length_m[segment])
        piece = np.searchsorted(self.piece_at_m, self.segment_at_m[segment] + along, "right") - 1
        last = self.first_piece[segment] + self.vertex_count[segment] - 2
        piece = np.clip(piece, self.first_piece[segment], last)
        p = self.pieces
        length = np.maximum(p.length_m[piece], MIN_EDGE_M)
        t = np.clip((along - p.start_m[piece]) / length, 0.0, 1.0)
        return p.x0[piece] + t * (p.x1[piece] - p.x0[piece]), p.y0[piece] + t * (
            p.y1[piece] - p.y0[piece]
        )

    def to_reported_m(self, segment: IntArray, local_m: FloatArray) -> FloatArray:
        """Local metres along segments as geodesic metres, the unit offsets are reported in."""
        scale = self.length_m[segment] / np.maximum(self.local_length_m[segment], MIN_EDGE_M)
        return np.asarray(local_m * scale)


def _pieces(
    x: FloatArray, y: FloatArray, counts: IntArray, starts: IntArray
) -> tuple[Pieces, FloatArray, FloatArray]:
    last = np.zeros(len(x), dtype=bool)
    last[starts + counts - 1] = True
    head = np.flatnonzero(~last)  # every point that has a next point in its own segment
    segment = np.repeat(np.arange(len(counts)), counts - 1)
    lengths = np.hypot(x[head + 1] - x[head], y[head + 1] - y[head])
    cumulative = np.cumsum(lengths)
    seg_end = cumulative[np.cumsum(counts - 1) - 1]
    seg_start = np.concatenate([[0.0], seg_end[:-1]])
    start_m = cumulative - lengths - seg_start[segment]
    pieces = Pieces(x[head], y[head], x[head + 1], y[head + 1], segment, start_m, lengths)
    vertex_m = np.zeros(len(x))
    vertex_m[head] = start_m
    vertex_m[last] = seg_end - seg_start
    return pieces, seg_end - seg_start, vertex_m


def _geodesic_lengths(
    lon: FloatArray, lat: FloatArray, counts: IntArray, starts: IntArray
) -> FloatArray:
    _, _, step = Geod(ellps="WGS84").inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    step = np.append(np.asarray(step, dtype=np.float64), 0.0)
    step[starts + counts - 1] = 0.0  # no step from one segment's last point to the next's first
    return np.asarray(np.add.reduceat(step, starts))


def _graph(
    segments: tuple[RoadSegment, ...],
    length_m: FloatArray,
    start_xy: tuple[FloatArray, FloatArray],
    end_xy: tuple[FloatArray, FloatArray],
) -> Graph:
    ids = np.array([(s.start_node, s.end_node) for s in segments], dtype=np.int64)
    nodes, inverse = np.unique(ids.ravel(), return_inverse=True)
    start, end = inverse.reshape(-1, 2).T
    node_x = np.zeros(len(nodes))
    node_y = np.zeros(len(nodes))
    node_x[start], node_y[start] = start_xy
    node_x[end], node_y[end] = end_xy
    edge_from = np.column_stack([start, end]).ravel()
    edge_to = np.column_stack([end, start]).ravel()
    usable = np.column_stack([np.ones(len(segments), bool), [not s.oneway for s in segments]])
    edge_length = np.repeat(np.maximum(length_m, MIN_EDGE_M), 2)
    ok = np.flatnonzero(usable.ravel() & (edge_from != edge_to))
    # The shortest of parallel edges between two nodes is the one a route takes.
    order = ok[np.lexsort((edge_length[ok], edge_to[ok], edge_from[ok]))]
    pair = edge_from[order] * len(nodes) + edge_to[order]
    first = order[np.concatenate([[True], pair[1:] != pair[:-1]])]
    return Graph(
        edge_from,
        edge_to,
        edge_length,
        usable.ravel(),
        edge_from[first],
        edge_to[first],
        edge_length[first],
        first,
        node_x,
        node_y,
    )
