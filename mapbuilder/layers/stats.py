"""Per-segment coverage from the catalog: which 20 m bins of each direction were captured, when
last, and by how many passes.

Bins are the rewards' bins (segment, direction, floor(offset / bin length)), so the coverage map
and the rewards agree on what "captured" means. Only accepted frames with a match count. The
catalog does the grouping (one row per captured bin and one per pass), so a segment driven a
thousand times costs as much to load as one driven once.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Row, Select, func, select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from mapbuilder.roads.segment import BBox

BIN_LENGTH_M = 20.0
_Row = TypeVar("_Row", bound=Any)
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True, eq=False)
class SegmentCoverage:
    """One active road segment and what the catalog knows of its captures.

    `last_capture_s[d, b]` is the latest capture time (UTC seconds since the epoch; NaN: never) of
    bin `b` driven in direction `d` (0 forward, 1 backward, relative to the digitised line).
    """

    segment_id: str
    road_class: str
    oneway: bool
    width_m: float
    length_m: float
    lonlat: tuple[tuple[float, float], ...]
    last_capture_s: NDArray[np.float64]
    captures: int
    bin_length_m: float = field(default=BIN_LENGTH_M)

    @property
    def bins(self) -> int:
        """Bins per direction (the last one may be short)."""
        return int(self.last_capture_s.shape[1])

    def coverage_in(self, direction: str) -> float:
        """Share of the segment's length captured at least once in `direction`."""
        seen = ~np.isnan(self.last_capture_s[DIRECTIONS.index(direction)])
        return float(np.sum(self._bin_metres()[seen]) / self.length_m) if self.length_m else 0.0

    @property
    def coverage(self) -> float:
        """Share of the drivable length captured: forward only on a one-way road, else the mean
        of both directions (a two-way road driven one way is half covered)."""
        if self.oneway:
            return self.coverage_in("forward")
        return (self.coverage_in("forward") + self.coverage_in("backward")) / 2

    def bin_last_capture_s(self) -> NDArray[np.float64]:
        """Latest capture of each bin in either direction (NaN: never)."""
        both = self.last_capture_s
        newest = np.fmax(both[0], both[1])
        return np.asarray(newest, np.float64)

    @property
    def last_capture(self) -> datetime | None:
        """The latest capture anywhere on the segment."""
        newest = np.nanmax(self.last_capture_s) if self.captures else math.nan
        return None if math.isnan(newest) else datetime.fromtimestamp(float(newest), UTC)

    @property
    def center_lonlat(self) -> tuple[float, float]:
        """Centre of the bounding box (where the rewards place a segment in a region)."""
        lons = [p[0] for p in self.lonlat]
        lats = [p[1] for p in self.lonlat]
        return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2

    def _bin_metres(self) -> NDArray[np.float64]:
        start = np.arange(self.bins) * self.bin_length_m
        return np.clip(self.length_m - start, 0.0, self.bin_length_m)


SegmentWeights = Callable[[Sequence[SegmentCoverage]], Sequence[float]]
"""The reward weight of each segment. Supplied by the composition layer (`roadswarm/`), which may
read the rewards' parameters; `mapbuilder` must not import `rewards` (rewards imports it)."""


def _in_box(query: Select[_Row], bbox: BBox | None) -> Select[_Row]:
    """`query` (which selects from `road_segments`) kept to active segments touching `bbox`."""
    query = query.where(RoadSegmentRow.retired_at.is_(None))
    if bbox is None:
        return query
    west, south, east, north = bbox
    return query.where(
        RoadSegmentRow.max_lon >= west,
        RoadSegmentRow.min_lon <= east,
        RoadSegmentRow.max_lat >= south,
        RoadSegmentRow.min_lat <= north,
    )


def load_coverage(
    catalog: Catalog, bbox: BBox | None = None, *, bin_length_m: float = BIN_LENGTH_M
) -> list[SegmentCoverage]:
    """Coverage of every active segment touching `bbox` (lon/lat degrees), sorted by id."""
    bin_index = func.floor(FrameMatch.offset_m / bin_length_m)
    matched = (
        select(FrameMatch.segment_id)
        .join(Frame, Frame.frame_id == FrameMatch.frame_id)
        .join(RoadSegmentRow, RoadSegmentRow.segment_id == FrameMatch.segment_id)
        .where(Frame.state == FrameState.ACCEPTED)
    )
    with catalog.session() as session:
        rows = session.scalars(
            _in_box(select(RoadSegmentRow), bbox).order_by(RoadSegmentRow.segment_id)
        ).all()
        binned = session.execute(
            _in_box(
                matched.add_columns(
                    FrameMatch.direction, bin_index, func.max(Frame.capture_time)
                ).group_by(FrameMatch.segment_id, FrameMatch.direction, bin_index),
                bbox,
            )
        ).all()
        passes = session.execute(
            _in_box(matched.add_columns(Frame.device_id, Frame.sequence_id).distinct(), bbox)
        ).all()
    captures = Counter(segment_id for segment_id, _, _ in passes)
    latest = _latest_by_bin(rows, binned, bin_length_m)
    return [
        SegmentCoverage(
            segment_id=row.segment_id,
            road_class=row.road_class,
            oneway=row.oneway,
            width_m=row.width_m,
            length_m=row.length_m,
            lonlat=tuple((float(lon), float(lat)) for lon, lat in json.loads(row.lonlat)),
            last_capture_s=latest[row.segment_id],
            captures=captures.get(row.segment_id, 0),
            bin_length_m=bin_length_m,
        )
        for row in rows
    ]


def bin_count(length_m: float, bin_length_m: float) -> int:
    """Bins of a segment (at least one), as the rewards count them."""
    return max(1, math.ceil(length_m / bin_length_m))


def _latest_by_bin(
    rows: Sequence[RoadSegmentRow],
    binned: Sequence[Row[str, str, float, datetime]],
    bin_length_m: float,
) -> dict[str, NDArray[np.float64]]:
    """Per segment, the (direction x bin) table of latest capture times from the grouped rows."""
    latest = {
        row.segment_id: np.full((2, bin_count(row.length_m, bin_length_m)), np.nan) for row in rows
    }
    for segment_id, direction, index, when in binned:
        table = latest[segment_id]
        # A fix can project a hair past either end: it belongs to the end bin, as in the rewards.
        b = min(max(int(index), 0), table.shape[1] - 1)
        d = DIRECTIONS.index(direction)
        table[d, b] = np.fmax(table[d, b], when.timestamp())
    return latest
