"""Road segments: a drivable way between two intersections (or ends), with a stable id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BBox = tuple[float, float, float, float]
LonLat = tuple[float, float]

# Ways a car may drive on, and how many lanes each class has when the source does not say.
DEFAULT_LANES: dict[str, int] = {
    "motorway": 4,
    "trunk": 4,
    "primary": 2,
    "secondary": 2,
    "tertiary": 2,
    "unclassified": 2,
    "residential": 2,
    "living_street": 1,
    "service": 1,
    "road": 2,
    "motorway_link": 1,
    "trunk_link": 1,
    "primary_link": 1,
    "secondary_link": 1,
    "tertiary_link": 1,
}
LANE_WIDTH_M: dict[str, float] = {"motorway": 3.5, "trunk": 3.5, "primary": 3.25, "secondary": 3.25}
DEFAULT_LANE_WIDTH_M = 3.0
SPEED_KMH: dict[str, float] = {
    "motorway": 90,
    "trunk": 70,
    "primary": 50,
    "secondary": 45,
    "tertiary": 40,
    "unclassified": 35,
    "residential": 30,
    "living_street": 15,
    "service": 15,
    "road": 30,
}
# The class given to lines of a vector file that name none.
DEFAULT_ROAD_CLASS = "road"


@dataclass(frozen=True)
class RoadSegment:
    """A drivable way between two intersections (or ends), digitised in its driving direction if
    it is one-way. `source_id` is the OSM way id, or the `id` of the vector feature it came from."""

    segment_id: str
    source_id: int
    road_class: str
    oneway: bool
    lanes: int
    width_m: float
    speed_kmh: float
    start_node: int
    end_node: int
    lonlat: tuple[LonLat, ...]

    @property
    def base_class(self) -> str:
        """The road class without its `_link` suffix."""
        return self.road_class.removesuffix("_link")


def segment_id_for(way_id: int, node_ids: list[int]) -> str:
    """Same way and nodes, same id: an unchanged segment keeps its id across source updates."""
    digest = hashlib.sha1(f"{way_id}:{','.join(map(str, node_ids))}".encode()).hexdigest()
    return f"s{digest[:15]}"


def make_segment(
    way_id: int,
    node_ids: list[int],
    lonlat: list[LonLat],
    *,
    road_class: str,
    oneway: bool,
    lanes: int,
) -> RoadSegment:
    """A segment with the width and speed its class implies; nodes and points in driving order."""
    lane_width = LANE_WIDTH_M.get(road_class.removesuffix("_link"), DEFAULT_LANE_WIDTH_M)
    return RoadSegment(
        segment_id=segment_id_for(way_id, node_ids),
        source_id=way_id,
        road_class=road_class,
        oneway=oneway,
        lanes=lanes,
        width_m=round(lanes * lane_width, 2),
        speed_kmh=SPEED_KMH.get(road_class.removesuffix("_link"), 30.0),
        start_node=node_ids[0],
        end_node=node_ids[-1],
        lonlat=tuple(lonlat),
    )


def split_at(node_ids: list[int], split_nodes: set[int]) -> list[tuple[int, int]]:
    """Index ranges [start, end] (inclusive) of the pieces of a way cut at `split_nodes`."""
    pieces: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(node_ids)):
        if node_ids[i] in split_nodes or i == len(node_ids) - 1:
            pieces.append((start, i))
            start = i
    return pieces


def inside(point: LonLat, bbox: BBox) -> bool:
    """Whether a lon/lat point lies in a (west, south, east, north) box."""
    return bbox[0] <= point[0] <= bbox[2] and bbox[1] <= point[1] <= bbox[3]


def keep_in_bbox(segments: list[RoadSegment], bbox: BBox | None) -> list[RoadSegment]:
    """Segments touching the box, kept whole, so ids are the same with or without a box."""
    if bbox is None:
        return segments
    return [s for s in segments if any(inside(p, bbox) for p in s.lonlat)]
