"""Scoring a matcher's answer on a simulated trace: share of points on the true directed segment,
and recall and precision of the driven route by length (1 m bins). Meili's answer (Valhalla edges
and OSM way ids) is first turned into the same segments and directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench._match_traces import BIN_M, Trace
from mapbuilder.matching.candidates import CandidateIndex
from mapbuilder.matching.results import MatchResult
from mapbuilder.roads.network import RoadNetwork

Label = tuple[str, int] | None
SNAP_M = 3.0  # how far Meili's shape may lie from the OSM geometry of its own way
DENSIFY_M = 0.5


@dataclass(frozen=True)
class Score:
    """Counts behind the metrics, so trace sets can be pooled before dividing."""

    points: int
    exact: int
    true_m: int
    matched_m: int
    common_m: int

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.points, self.exact, self.true_m, self.matched_m, self.common_m)

    def metrics(self) -> dict[str, float]:
        """Exact-segment share, recall and precision by length."""
        return {
            "exact_segment": round(self.exact / max(self.points, 1), 4),
            "recall": round(self.common_m / max(self.true_m, 1), 4),
            "precision": round(self.common_m / max(self.matched_m, 1), 4),
        }


def score(trace: Trace, labels: list[Label], bins: set[tuple[str, int, int]]) -> Score:
    """How well per-point labels and route bins agree with the trace's truth."""
    exact = sum(label == truth for label, truth in zip(labels, trace.true_segment, strict=True))
    common = len(bins & trace.true_bins)
    return Score(len(labels), exact, len(trace.true_bins), len(bins), common)


def ours(
    network: RoadNetwork, result: MatchResult
) -> tuple[list[Label], set[tuple[str, int, int]]]:
    """Labels and route bins of a roadswarm match result."""
    labels: list[Label] = [
        (p.segment_id, 1 if p.direction == "forward" else -1) if p else None for p in result.points
    ]
    bins: set[tuple[str, int, int]] = set()
    for path in result.paths:
        for iv in path.intervals:
            length = float(network.length_m[network.index[iv.segment_id]])
            top = min(iv.to_m, length - 1e-9)
            sign = 1 if iv.direction == "forward" else -1
            bins.update(
                (iv.segment_id, sign, k)
                for k in range(int(iv.from_m // BIN_M), int(top // BIN_M) + 1)
            )
    return labels, bins


def decode_polyline6(text: str) -> list[tuple[float, float]]:
    """(lon, lat) points of an encoded polyline with six decimals, as Valhalla writes shapes."""
    values: list[int] = []
    value, shift = 0, 0
    for char in text:
        byte = ord(char) - 63
        value |= (byte & 0x1F) << shift
        shift += 5
        if byte < 0x20:
            values.append(~(value >> 1) if value & 1 else value >> 1)
            value, shift = 0, 0
    lat = np.cumsum(values[0::2]) / 1e6
    lon = np.cumsum(values[1::2]) / 1e6
    return list(zip(lon.tolist(), lat.tolist(), strict=True))


class MeiliLabeller:
    """Meili's edges placed on our segments: the nearest segment of the same OSM way."""

    def __init__(self, network: RoadNetwork) -> None:
        self.network = network
        self.index = CandidateIndex(network)
        self.source = np.array([s.source_id for s in network.segments])

    def _snap(self, x: np.ndarray, y: np.ndarray, way: int) -> tuple[np.ndarray, np.ndarray]:
        """Segment index (-1: none) and offset along it of points on OSM way `way`."""
        c = self.index.query(x, y, radius_m=SNAP_M, max_candidates=16)
        segment, along = np.full(len(x), -1), np.zeros(len(x))
        for j in range(len(x)):
            edges = c.edge[c.offsets[j] : c.offsets[j + 1]]
            pick = np.flatnonzero((edges % 2 == 0) & (self.source[edges // 2] == way))
            if pick.size:
                best = pick[np.argmin(c.dist_m[c.offsets[j] + pick])]
                segment[j], along[j] = edges[best] // 2, c.pos_m[c.offsets[j] + best]
        return segment, along

    def label(
        self, answer: dict[str, Any], n: int
    ) -> tuple[list[Label], set[tuple[str, int, int]]]:
        """Per-point labels and route bins of one `trace_attributes` answer for `n` points."""
        if "edges" not in answer:
            return [None] * n, set()
        shape = decode_polyline6(answer["shape"])
        bins: set[tuple[str, int, int]] = set()
        directions: list[dict[int, int]] = []
        for k, edge in enumerate(answer["edges"]):
            points = np.array(shape[edge["begin_shape_index"] : edge["end_shape_index"] + 1])
            directions.append(self._edge_bins(points, int(edge.get("way_id", -1)), k, bins))
        labels: list[Label] = []
        for point in answer["matched_points"]:
            labels.append(self._point_label(point, answer["edges"], directions))
        return labels, bins

    def _edge_bins(
        self, points: np.ndarray, way: int, k: int, bins: set[tuple[str, int, int]]
    ) -> dict[int, int]:
        """Bins of one Meili edge on our segments, and the direction it drives each segment in."""
        x, y = self.network.frame.to_local(points[:, 0], points[:, 1])
        s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        dense = np.arange(0.0, s[-1] + DENSIFY_M / 2, DENSIFY_M)
        dx, dy = np.interp(dense, s, x), np.interp(dense, s, y)
        segment, along = self._snap(dx, dy, way)
        # Driving direction from tangents: Meili's shape against the segment's digitisation.
        ok = segment >= 0
        sign = np.zeros(len(dense), dtype=np.int64)
        if ok.any() and len(s) > 1:
            ahead = np.minimum(dense[ok] + 0.5, s[-1])
            behind = np.maximum(dense[ok] - 0.5, 0.0)
            tx = np.interp(ahead, s, x) - np.interp(behind, s, x)
            ty = np.interp(ahead, s, y) - np.interp(behind, s, y)
            ax, ay = self.network.point_at(segment[ok], along[ok] + 0.5)
            bx, by = self.network.point_at(segment[ok], along[ok] - 0.5)
            sign[ok] = np.where(tx * (ax - bx) + ty * (ay - by) >= 0, 1, -1)
        direction: dict[int, int] = {}
        for seg in np.unique(segment[ok]).tolist():
            on = segment == seg
            direction[seg] = 1 if sign[on].sum() >= 0 else -1
            sid = self.network.segments[seg].segment_id
            reported = self.network.to_reported_m(segment[on], along[on])
            bins.update((sid, direction[seg], int(o // BIN_M)) for o in reported.tolist())
        # Length on ways our network does not hold still counts as matched (and wrong).
        bins.update((f"edge{k}", 0, i) for i in np.flatnonzero(~ok).tolist())
        return direction

    def _point_label(
        self, point: dict[str, Any], edges: list[dict[str, Any]], directions: list[dict[int, int]]
    ) -> Label:
        if point.get("type") == "unmatched" or "edge_index" not in point:
            return None
        k = int(point["edge_index"])
        if not 0 <= k < len(edges):
            return None
        x, y = self.network.frame.to_local(np.array([point["lon"]]), np.array([point["lat"]]))
        segment, _ = self._snap(x, y, int(edges[k].get("way_id", -1)))
        seg = int(segment[0])
        if seg < 0 or seg not in directions[k]:
            return None
        return self.network.segments[seg].segment_id, directions[k][seg]
