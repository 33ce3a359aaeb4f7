"""The matched path of a run of HMM states: the edges it drives (traversals), its polyline, and
the projection of every fix onto it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapbuilder.geo import FloatArray
from mapbuilder.matching.candidates import project
from mapbuilder.matching.hmm import SAME_EDGE, U_TURN
from mapbuilder.roads.network import IntArray, RoadNetwork


@dataclass(frozen=True)
class Traversals:
    """Edges driven in order, each from `from_m` to `to_m` along it (local metres, driving
    direction), starting `start_s` metres along the whole path."""

    edge: IntArray
    from_m: FloatArray
    to_m: FloatArray
    start_s: FloatArray


@dataclass(frozen=True)
class Polyline:
    """A path's vertices in local metres with their distance along the path."""

    x: FloatArray
    y: FloatArray
    s: FloatArray


class _Builder:
    """Collects traversals while walking the states of one path."""

    def __init__(self, net: RoadNetwork, edge: int, pos: float, lead_m: float) -> None:
        self.length = net.local_length_m
        self.rows: list[tuple[int, float, float]] = []
        self.edge, self.start, self.pos = edge, max(0.0, pos - lead_m), pos
        self.done_s = 0.0

    @property
    def s(self) -> float:
        return self.done_s + self.pos - self.start

    def close(self, to_m: float) -> None:
        self.rows.append((self.edge, self.start, to_m))
        self.done_s += to_m - self.start

    def open(self, edge: int, pos: float) -> None:
        self.edge, self.start, self.pos = edge, pos, pos

    def step(self, kind: int, edge: int, pos: float, through: list[int]) -> None:
        if kind == SAME_EDGE:
            self.pos = max(self.pos, pos)  # fixes jitter backwards while standing: hold still
        elif kind == U_TURN:
            self.close(self.pos)
            self.open(edge, self.length[edge // 2] - self.pos)
            self.pos = max(self.pos, pos)
        else:
            self.close(self.length[self.edge // 2])
            for e in through:
                self.open(e, 0.0)
                self.close(self.length[e // 2])
            self.open(edge, 0.0)
            self.pos = pos

    def finish(self, tail_m: float) -> Traversals:
        self.close(min(self.pos + tail_m, float(self.length[self.edge // 2])))
        edge, from_m, to_m = (np.array(v) for v in zip(*self.rows, strict=True))
        spans = to_m - from_m
        return Traversals(edge.astype(np.int64), from_m, to_m, np.cumsum(spans) - spans)


def traverse(
    net: RoadNetwork,
    edges: list[int],
    positions: list[float],
    kinds: list[int],
    through: list[list[int]],
    *,
    margin_m: float = 0.0,
) -> tuple[Traversals, FloatArray]:
    """The traversals of a path through states (edge, position), reached by `kinds[k]` routes
    (`through[k]` the edges in between) from state k - 1, and each state's distance along it.
    The path reaches up to `margin_m` before the first state and after the last (on their own
    edges): the fixes an observation stands for lie around it."""
    builder = _Builder(net, edges[0], positions[0], margin_m)
    state_s = [builder.s]
    for k in range(1, len(edges)):
        builder.step(kinds[k], edges[k], positions[k], through[k])
        state_s.append(builder.s)
    return builder.finish(margin_m), np.array(state_s)


def trim(trav: Traversals, lo_s: float, hi_s: float) -> Traversals:
    """The part of a path between distances `lo_s` and `hi_s` along it."""
    end_s = trav.start_s + trav.to_m - trav.from_m
    keep = np.flatnonzero((end_s >= lo_s) & (trav.start_s <= hi_s))
    if keep.size == 0:
        keep = np.array([0])
    start_s, from_m = trav.start_s[keep], trav.from_m[keep]
    cut_from = from_m + np.clip(lo_s - start_s, 0.0, None)
    cut_to = np.minimum(trav.to_m[keep], from_m + hi_s - start_s)
    cut_to = np.maximum(cut_to, cut_from)
    return Traversals(trav.edge[keep], cut_from, cut_to, np.maximum(start_s, lo_s))


def _edge_offsets(net: RoadNetwork, edge: IntArray, along: FloatArray) -> FloatArray:
    """Edge positions (driving direction) as offsets from the segment's first point, or back."""
    length = net.local_length_m[edge // 2]
    return np.where(edge % 2 == 0, along, length - along)


def polyline(net: RoadNetwork, trav: Traversals) -> Polyline:
    """The path's vertices: each traversal's ends plus the segment vertices strictly between."""
    segment = trav.edge // 2
    counts = net.vertex_count[segment]
    group = np.repeat(np.arange(len(segment)), counts)
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    vertex = net.first_vertex[segment][group] + rank
    along = _edge_offsets(net, trav.edge[group], net.vertex_m[vertex])
    inner = (along > trav.from_m[group]) & (along < trav.to_m[group])
    ends = np.concatenate([trav.from_m, trav.to_m])
    ex, ey = net.point_at(np.tile(segment, 2), _edge_offsets(net, np.tile(trav.edge, 2), ends))
    owner = np.concatenate([group[inner], np.tile(np.arange(len(segment)), 2)])
    m = np.concatenate([along[inner], ends])
    order = np.lexsort((m, owner))
    x = np.concatenate([net.vertex_x[vertex[inner]], ex])[order]
    y = np.concatenate([net.vertex_y[vertex[inner]], ey])[order]
    s = (trav.start_s[owner] + m - trav.from_m[owner])[order]
    return Polyline(x, y, s)


def project_on_path(
    line: Polyline, px: FloatArray, py: FloatArray, lo_s: FloatArray, hi_s: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Distance along the path of the point nearest to each position within its window
    [lo_s, hi_s], and that point's x and y."""
    first = np.clip(np.searchsorted(line.s, lo_s, "right") - 1, 0, max(len(line.s) - 2, 0))
    last = np.clip(np.searchsorted(line.s, hi_s, "left"), first + 1, len(line.s) - 1)
    counts = last - first
    owner = np.repeat(np.arange(len(px)), counts)
    piece = (
        np.repeat(first, counts)
        + np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
    )
    t, dist = project(
        px[owner], py[owner], line.x[piece], line.y[piece], line.x[piece + 1], line.y[piece + 1]
    )
    order = np.lexsort((dist, owner))
    best = order[np.searchsorted(owner[order], np.arange(len(px)))]
    s = line.s[piece[best]] + t[best] * (line.s[piece[best] + 1] - line.s[piece[best]])
    s = np.clip(s, lo_s, hi_s)
    return s, np.interp(s, line.s, line.x), np.interp(s, line.s, line.y)


def locate(trav: Traversals, s: FloatArray) -> tuple[IntArray, FloatArray]:
    """The edge and position along it of each distance along the path."""
    k = np.clip(np.searchsorted(trav.start_s, s, "right") - 1, 0, len(trav.edge) - 1)
    return trav.edge[k], np.minimum(trav.from_m[k] + s - trav.start_s[k], trav.to_m[k])
