"""The drivable road network of a world: OSM ways split at intersections into stable segments.

The reading lives in `mapbuilder.roads` (the map builder matches drives against the same segments);
this module turns its errors into the simulator's user errors and keeps the world's GeoJSON format.
"""

from __future__ import annotations

import json
from pathlib import Path

from mapbuilder.errors import NoRoadsError as MapNoRoadsError
from mapbuilder.errors import RoadFileError
from mapbuilder.roads.osm import read_osm_segments
from mapbuilder.roads.segment import (
    DEFAULT_LANE_WIDTH_M,
    DEFAULT_LANES,
    LANE_WIDTH_M,
    SPEED_KMH,
    BBox,
    RoadSegment,
    segment_id_for,
)
from mapbuilder.roads.store import segments_from_geojson, segments_to_geojson
from roadswarm.errors import UserInputError
from roadswarm.sim.errors import NoRoadsError

__all__ = [
    "DEFAULT_LANES",
    "DEFAULT_LANE_WIDTH_M",
    "LANE_WIDTH_M",
    "SPEED_KMH",
    "BBox",
    "RoadSegment",
    "read_road_segments",
    "read_roads_geojson",
    "segment_id_for",
    "write_roads_geojson",
]


def read_road_segments(osm_path: Path, bbox: BBox | None = None) -> list[RoadSegment]:
    """Drivable ways of an OSM extract, split at every shared node, in a stable order."""
    try:
        return read_osm_segments(osm_path, bbox=bbox)
    except MapNoRoadsError as exc:
        raise NoRoadsError(str(exc)) from exc
    except RoadFileError as exc:
        raise UserInputError(str(exc)) from exc


def write_roads_geojson(segments: list[RoadSegment], path: Path) -> None:
    """GeoJSON LineStrings in WGS84 with every segment attribute as a property."""
    path.write_text(json.dumps(segments_to_geojson(segments)))


def read_roads_geojson(path: Path) -> list[RoadSegment]:
    """The segments written by `write_roads_geojson`."""
    return segments_from_geojson(json.loads(path.read_text()))
