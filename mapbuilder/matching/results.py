"""What the matcher returns: a place on a segment per point, and the covered stretch of each
segment per matched path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from mapbuilder.matching.paths import Traversals
from mapbuilder.roads.network import RoadNetwork
from mapbuilder.sequences import StitchedSequence

Direction = Literal["forward", "backward"]


class MatchedPoint(NamedTuple):
    """Where a point was matched: a segment, the direction driven relative to the segment's
    digitisation, the offset along it from its first point, and the distance from the fix.
    (A named tuple: one is made per fix, and that is ten times cheaper than a dataclass.)"""

    segment_id: str
    source_id: int
    direction: Direction
    offset_m: float
    distance_m: float


@dataclass(frozen=True)
class CoveredInterval:
    """The stretch [from_m, to_m] of a segment (offsets from its first point) driven in `direction`."""

    segment_id: str
    source_id: int
    direction: Direction
    from_m: float
    to_m: float


@dataclass(frozen=True)
class MatchedPath:
    """A continuous matched path: points `first_index`..`last_index` of the input (in time order)
    and the segment stretches it covers, in driving order."""

    sequence: int
    first_index: int
    last_index: int
    intervals: tuple[CoveredInterval, ...]


@dataclass(frozen=True)
class MatchResult:
    """One entry per input point (None: unmatched), the matched paths, and the stitched sequences
    (a sequence holds one path, or several where no route joins its fixes)."""

    points: list[MatchedPoint | None]
    paths: list[MatchedPath]
    sequences: list[StitchedSequence]

    @property
    def matched_share(self) -> float:
        """The share of input points that were matched."""
        return sum(p is not None for p in self.points) / len(self.points) if self.points else 0.0


def direction_of(edge: int) -> Direction:
    """Forward for even (digitisation-direction) edges, backward for odd ones."""
    return "forward" if edge % 2 == 0 else "backward"


def covered_intervals(net: RoadNetwork, trav: Traversals) -> tuple[CoveredInterval, ...]:
    """Traversals as segment stretches in reported metres; consecutive ones on one edge merged."""
    rows: list[list[float]] = []
    for edge, a, b in zip(
        trav.edge.tolist(), trav.from_m.tolist(), trav.to_m.tolist(), strict=True
    ):
        if rows and rows[-1][0] == edge and abs(rows[-1][2] - a) < 1e-6:
            rows[-1][2] = b
        elif b > a:
            rows.append([edge, a, b])
    if not rows:  # a path that never moved still covers the spot where it stood
        rows.append([int(trav.edge[0]), float(trav.from_m[0]), float(trav.from_m[0])])
    intervals = []
    for edge_f, a, b in rows:
        edge = int(edge_f)
        k = edge // 2
        length = float(net.local_length_m[k])
        lo, hi = (a, b) if edge % 2 == 0 else (length - b, length - a)
        reported = net.to_reported_m(np.array([k, k]), np.array([lo, hi]))
        segment = net.segments[k]
        intervals.append(
            CoveredInterval(
                segment.segment_id,
                segment.source_id,
                direction_of(edge),
                round(float(reported[0]), 2),
                round(float(reported[1]), 2),
            )
        )
    return tuple(intervals)
