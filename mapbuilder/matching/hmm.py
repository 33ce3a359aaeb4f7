"""The hidden Markov model of Newson & Krumm (2009): Gaussian emissions, transitions from how far
the route between two candidates differs from the straight line between the fixes, and Viterbi in
log space, with a break wherever no transition is possible."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mapbuilder.geo import FloatArray
from mapbuilder.matching.candidates import Candidates
from mapbuilder.matching.routes import Router, RouteTable
from mapbuilder.roads.network import IntArray, RoadNetwork
from mapbuilder.settings import MatchSettings

SMALL_STEP = 36  # candidate pairs up to which a Viterbi step is faster in plain Python
# How a route from one candidate to the next runs.
THROUGH_GRAPH, SAME_EDGE, U_TURN = 0, 1, 2


@dataclass(frozen=True)
class StepPairs:
    """Every (candidate of j, candidate of j + 1) pair of a run of steps, step after step."""

    a: IntArray
    b: IntArray
    sizes: IntArray  # pairs per step
    steps: IntArray  # the step (observation index j) of each pair


def step_pairs(c: Candidates, j0: int, j1: int) -> StepPairs:
    """All candidate pairs of steps j0 -> j0 + 1 ... j1 - 1 -> j1, rows of `a` major."""
    na = np.diff(c.offsets)[j0:j1]
    nb = np.diff(c.offsets)[j0 + 1 : j1 + 1]
    sizes = na * nb
    steps = np.repeat(np.arange(j0, j1), sizes)
    q = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    width = np.repeat(nb, sizes)
    return StepPairs(c.offsets[steps] + q // width, c.offsets[steps + 1] + q % width, sizes, steps)


def route_kind(
    net: RoadNetwork, ea: IntArray, eb: IntArray, pa: FloatArray, pb: FloatArray, tol_m: float
) -> tuple[IntArray, FloatArray]:
    """How each pair's route runs, and its length where that needs no graph search: forward (or a
    little back, as fixes jitter) along one edge, or a U-turn on the spot between its directions."""
    same = (ea == eb) & (pb - pa >= -tol_m)
    length = net.local_length_m[ea // 2]
    in_place = pb - (length - pa)
    u_turn = (eb == (ea ^ 1)) & (in_place >= -tol_m)
    kind = np.where(same, SAME_EDGE, np.where(u_turn, U_TURN, THROUGH_GRAPH))
    return kind, np.where(same, pb - pa, np.where(u_turn, in_place, length - pa + pb))


class Transitions:
    """Transition log-probabilities of HMM steps, from one bounded route table per chunk."""

    def __init__(self, net: RoadNetwork, settings: MatchSettings) -> None:
        self.net = net
        self.s = settings
        self.router = Router(net.graph)

    def log_p(self, c: Candidates, pairs: StepPairs, straight_m: FloatArray) -> FloatArray:
        """-(|route - straight line| + U-turn penalty) / beta per pair; -inf where impossible."""
        g, s = self.net.graph, self.s
        ea, eb = c.edge[pairs.a], c.edge[pairs.b]
        kind, route = route_kind(self.net, ea, eb, c.pos_m[pairs.a], c.pos_m[pairs.b], self.tol_m)
        gc = straight_m[pairs.steps]
        allowed = gc * s.max_route_factor + s.route_slack_m
        needs = kind == THROUGH_GRAPH
        if needs.any():
            src, tgt = g.edge_to[ea[needs]], g.edge_from[eb[needs]]
            table = RouteTable(self.router, src, tgt, float(allowed[needs].max()))
            route[needs] += table.distance(src, tgt)
        # Every U-turn pays, at a dead end too: jitter near a stub must not be read as a visit.
        turned = eb == (ea ^ 1)
        cost = np.abs(route - gc) + np.where(turned, s.reverse_penalty_m, 0.0)
        return np.where(route <= allowed, -cost / s.transition_beta_m, -np.inf)

    @property
    def tol_m(self) -> float:
        """How far a fix may seem to move backwards along a road before that means a U-turn."""
        return 2.0 * self.s.gps_sigma_m


def viterbi_chunk(
    emission: list[float],
    offsets: list[int],
    steps: range,
    step_p: FloatArray,
    score: list[float],
    back: list[int],
) -> None:
    """Advance the Viterbi scores over `steps` (j -> j + 1) in place, given per pair the
    transition log-probability plus the emission of its second candidate (`step_p`); `back` gets
    each candidate's best predecessor, or -1 for all of an observation's candidates where no
    transition into it is possible (a new path starts there). Every observation has a candidate.

    A candidate no transition reaches keeps a predecessor but scores -inf, so no path uses it.
    Scores fall by some tens a step: float64 stays exact enough over millions of steps. Small
    steps (most of them: a road or two, each way) run in plain Python, where numpy's call overhead
    would cost more than the arithmetic."""
    p = step_p.tolist()
    start = 0
    for j in steps:
        a0, b0, b1 = offsets[j], offsets[j + 1], offsets[j + 2]
        na, nb = b0 - a0, b1 - b0
        if na * nb <= SMALL_STEP:
            top, best = _small_step(score[a0:b0], p, start, nb)
        else:
            total = np.array(score[a0:b0])[:, None] + step_p[start : start + na * nb].reshape(
                na, nb
            )
            where = total.argmax(axis=0)
            top, best = total[where, np.arange(nb)].tolist(), where.tolist()
        start += na * nb
        if max(top) == -math.inf:
            score[b0:b1], back[b0:b1] = emission[b0:b1], [-1] * nb
        else:
            score[b0:b1], back[b0:b1] = top, [a0 + a for a in best]


def _small_step(
    prev: list[float], p: list[float], start: int, nb: int
) -> tuple[list[float], list[int]]:
    """Best score and predecessor of each of `nb` candidates, from the scores `prev`."""
    top, best = [], []
    for b in range(nb):
        value, arg = -math.inf, 0
        for a, before in enumerate(prev):
            candidate = before + p[start + a * nb + b]
            if candidate > value:
                value, arg = candidate, a
        top.append(value)
        best.append(arg)
    return top, best
