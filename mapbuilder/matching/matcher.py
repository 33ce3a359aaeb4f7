"""Map matching of tracks to a road network: stitch, thin, HMM, then place every point on the
matched path."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from mapbuilder.geo import FloatArray
from mapbuilder.matching.candidates import CandidateIndex, Candidates
from mapbuilder.matching.hmm import (
    THROUGH_GRAPH,
    Transitions,
    route_kind,
    step_pairs,
    viterbi_chunk,
)
from mapbuilder.matching.observations import Observations, observe
from mapbuilder.matching.paths import locate, polyline, project_on_path, traverse, trim
from mapbuilder.matching.results import (
    MatchedPath,
    MatchedPoint,
    MatchResult,
    covered_intervals,
    direction_of,
)
from mapbuilder.matching.routes import RouteTable
from mapbuilder.roads.network import IntArray, RoadNetwork
from mapbuilder.sequences import StitchedSequence, TrackPoint, stitch
from mapbuilder.settings import MatchSettings


@dataclass
class _Placed:
    """Per input point: matched edge (-1: unmatched), position along it, distance from the fix."""

    edge: IntArray
    pos_m: FloatArray
    dist_m: FloatArray


def _argmax(values: list[float], start: int, end: int) -> int:
    """Index of the largest of values[start:end]."""
    return max(range(start, end), key=values.__getitem__)


def _windows(
    bin_of_point: IntArray, kept: IntArray, state_s: FloatArray, total_s: float
) -> tuple[IntArray, FloatArray, FloatArray]:
    """The points of a run (those whose observation is one of its states), and the stretch of
    the path each may be placed on: from the state before its own to the state after."""
    state_of_bin = np.full(int(bin_of_point.max()) + 1, -1)
    state_of_bin[kept] = np.arange(len(kept))
    members = np.flatnonzero(state_of_bin[bin_of_point] >= 0)
    j = state_of_bin[bin_of_point[members]]
    last = len(kept) - 1
    lo = np.where(j == 0, 0.0, state_s[np.maximum(j - 1, 0)])
    hi = np.where(j == last, total_s, state_s[np.minimum(j + 1, last)])
    return members, lo, hi


@dataclass(frozen=True)
class _Run:
    """A run of HMM states joined by possible transitions: one continuous matched path."""

    candidates: Candidates
    chosen: IntArray  # the chosen candidate of each observation of the run
    kept: IntArray  # which observations those are
    straight_m: FloatArray  # straight-line distance of each step


class MapMatcher:
    """A Newson & Krumm matcher over one road network; build once, match many tracks."""

    def __init__(self, network: RoadNetwork, *, settings: MatchSettings | None = None) -> None:
        self.network = network
        self.settings = settings or MatchSettings()
        self.index = CandidateIndex(network)
        self.transitions = Transitions(network, self.settings)
        self._ids = (
            [s.segment_id for s in network.segments],
            [s.source_id for s in network.segments],
        )

    def match_points(self, points: Sequence[TrackPoint]) -> MatchResult:
        """Match track points; the result has one entry per point, in input order."""
        lon = np.array([p.lon for p in points], dtype=np.float64)
        lat = np.array([p.lat for p in points], dtype=np.float64)
        time_s = np.array([p.time.timestamp() if p.time else np.nan for p in points])
        given = np.array([np.nan if p.heading_deg is None else p.heading_deg for p in points])
        return self.match(lon, lat, time_s, heading_deg=given)

    def match(
        self,
        lon: ArrayLike,
        lat: ArrayLike,
        time_s: ArrayLike,
        *,
        heading_deg: ArrayLike | None = None,
    ) -> MatchResult:
        """Match points given as arrays (POSIX seconds and degrees, NaN where unknown). Points
        with bad coordinates or far from every road are unmatched (None)."""
        lon, lat, time_s = (np.asarray(a, dtype=np.float64) for a in (lon, lat, time_s))
        if heading_deg is not None:
            heading_deg = np.asarray(heading_deg, dtype=np.float64)
        n = len(lon)
        placed = _Placed(np.full(n, -1), np.zeros(n), np.zeros(n))
        options = self.settings.sequence_options()
        sequences = stitch(
            lon, lat, time_s, heading_deg=heading_deg, frame=self.network.frame, options=options
        )
        paths: list[MatchedPath] = []
        for k, seq in enumerate(sequences):
            paths.extend(self._match_sequence(k, seq, placed))
        return MatchResult(self._records(placed), paths, sequences)

    def _candidates(self, obs: Observations) -> tuple[Candidates, IntArray]:
        """Candidates of the observations that have any, and which observations those are."""
        s = self.settings
        c = self.index.query(
            obs.x,
            obs.y,
            radius_m=s.search_radius_m,
            max_candidates=s.max_candidates,
            margin_m=s.candidate_margin_m,
        )
        kept = np.flatnonzero(np.diff(c.offsets) > 0)
        offsets = np.append(c.offsets[kept], c.offsets[-1])
        return replace(c, offsets=offsets), kept

    def _emission(self, c: Candidates, hx: FloatArray, hy: FloatArray) -> FloatArray:
        """Gaussian in the distance to the road, and von Mises in the angle between the direction
        of travel and the driving direction of the candidate (zero where not moving)."""
        owner = np.repeat(np.arange(len(hx)), np.diff(c.offsets))
        cosine = hx[owner] * c.tangent_x + hy[owner] * c.tangent_y
        moving = (hx[owner] != 0.0) | (hy[owner] != 0.0)
        heading = np.where(moving, self.settings.heading_kappa * (cosine - 1.0), 0.0)
        return np.asarray(-0.5 * (c.dist_m / self.settings.gps_sigma_m) ** 2 + heading)

    def _viterbi(
        self, c: Candidates, x: FloatArray, y: FloatArray, emission: FloatArray
    ) -> tuple[IntArray, IntArray]:
        """The best candidate of each observation and where a new path starts (no transition)."""
        restart = emission.tolist()  # the scores a new path starts from after a break
        score, back = restart.copy(), [-1] * len(c.edge)
        straight = np.hypot(np.diff(x), np.diff(y))
        offsets, n = c.offsets.tolist(), len(x)
        for j0 in range(0, n - 1, self.settings.chunk_steps):
            j1 = min(j0 + self.settings.chunk_steps, n - 1)
            pairs = step_pairs(c, j0, j1)
            step_p = self.transitions.log_p(c, pairs, straight) + emission[pairs.b]
            viterbi_chunk(restart, offsets, range(j0, j1), step_p, score, back)
        chosen = [0] * n
        chosen[-1] = _argmax(score, offsets[-2], offsets[-1])
        for j in range(n - 1, 0, -1):
            b = back[chosen[j]]
            chosen[j - 1] = b if b >= 0 else _argmax(score, offsets[j - 1], offsets[j])
        starts = [j for j in range(n) if back[chosen[j]] < 0]
        return np.array(chosen, dtype=np.int64), np.array(starts, dtype=np.int64)

    def _through(
        self, c: Candidates, chosen: IntArray, straight: FloatArray
    ) -> tuple[list[int], list[list[int]]]:
        """Route kind of each transition into a state, and the edges driven in between."""
        ea, eb = c.edge[chosen[:-1]], c.edge[chosen[1:]]
        kinds, _ = route_kind(
            self.network, ea, eb, c.pos_m[chosen[:-1]], c.pos_m[chosen[1:]], self.transitions.tol_m
        )
        through: list[list[int]] = [[] for _ in range(len(chosen))]
        graph = np.flatnonzero(kinds == THROUGH_GRAPH)
        if graph.size:
            g, s = self.network.graph, self.settings
            src, tgt = g.edge_to[ea[graph]], g.edge_from[eb[graph]]
            limit = float((straight[graph] * s.max_route_factor + s.route_slack_m).max())
            table = RouteTable(self.transitions.router, src, tgt, limit, with_paths=True)
            for k, a, b in zip(graph.tolist(), src.tolist(), tgt.tolist(), strict=True):
                through[k + 1] = table.path(a, b)
        return [-1, *kinds.tolist()], through

    def _match_sequence(self, k: int, seq: StitchedSequence, placed: _Placed) -> list[MatchedPath]:
        """Match one sequence: a path per run of states that transitions join."""
        s = self.settings
        obs = observe(seq, spacing_m=s.thin_spacing_m, min_speed_mps=s.heading_min_speed_mps)
        c, kept = self._candidates(obs)
        if len(kept) == 0:
            return []
        emission = self._emission(c, obs.heading_x[kept], obs.heading_y[kept])
        chosen, starts = self._viterbi(c, obs.x[kept], obs.y[kept], emission)
        straight = np.hypot(np.diff(obs.x[kept]), np.diff(obs.y[kept]))
        bounds = [*starts.tolist(), len(kept)]
        return [
            self._place_run(
                k, seq, obs, _Run(c, chosen[a:b], kept[a:b], straight[a : b - 1]), placed
            )
            for a, b in itertools.pairwise(bounds)
        ]

    def _place_run(
        self, k: int, seq: StitchedSequence, obs: Observations, run: _Run, placed: _Placed
    ) -> MatchedPath:
        """Lay out the path of one run of states and place its points on it."""
        c, chosen, kept = run.candidates, run.chosen, run.kept
        kinds, through = self._through(c, chosen, run.straight_m)
        edges, positions = c.edge[chosen].tolist(), c.pos_m[chosen].tolist()
        margin = 2.0 * self.settings.thin_spacing_m
        trav, state_s = traverse(self.network, edges, positions, kinds, through, margin_m=margin)
        total = float(trav.start_s[-1] + trav.to_m[-1] - trav.from_m[-1])
        members, lo, hi = _windows(obs.bin_of_point, kept, state_s, total)
        line = polyline(self.network, trav)
        # The smoothed track picks the place; the distance is the fix's own.
        s, x, y = project_on_path(line, seq.smooth_x_m[members], seq.smooth_y_m[members], lo, hi)
        dist = np.hypot(seq.x_m[members] - x, seq.y_m[members] - y)
        edge, pos = locate(trav, s)
        near = dist <= self.settings.search_radius_m
        index = seq.indices[members[near]]
        placed.edge[index], placed.pos_m[index], placed.dist_m[index] = (
            edge[near],
            pos[near],
            dist[near],
        )
        first, last = int(seq.indices[members[0]]), int(seq.indices[members[-1]])
        # The path covers what its placed fixes span, not the margins laid out for them.
        covered = trim(trav, float(s[near].min()), float(s[near].max())) if near.any() else trav
        return MatchedPath(k, first, last, covered_intervals(self.network, covered))

    def _records(self, placed: _Placed) -> list[MatchedPoint | None]:
        """One record per input point, offsets in reported (geodesic) metres."""
        net = self.network
        segment = np.where(placed.edge >= 0, placed.edge // 2, 0)
        length = net.local_length_m[segment]
        along = np.where(placed.edge % 2 == 0, placed.pos_m, length - placed.pos_m)
        offset = np.round(net.to_reported_m(segment, along), 2).tolist()
        dist = np.round(placed.dist_m, 2).tolist()
        ids, sources = self._ids
        return [
            None if e < 0 else MatchedPoint(ids[e // 2], sources[e // 2], direction_of(e), o, d)
            for e, o, d in zip(placed.edge.tolist(), offset, dist, strict=True)
        ]
