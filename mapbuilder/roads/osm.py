"""Drivable roads of an OSM extract (pyosmium): ways split at every shared node into segments."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import osmium

from mapbuilder.errors import NoRoadsError, RoadFileError
from mapbuilder.roads.segment import (
    DEFAULT_LANES,
    BBox,
    LonLat,
    RoadSegment,
    keep_in_bbox,
    make_segment,
    split_at,
)

EXCLUDED_SERVICE = {"parking_aisle", "driveway", "drive-through"}
OSM_SUFFIXES = (".pbf", ".osm", ".o5m", ".bz2", ".gz")


@dataclass
class _Way:
    way_id: int
    tags: dict[str, str]
    node_ids: list[int]
    lonlat: list[LonLat]


def is_drivable(tags: dict[str, str]) -> bool:
    """A `highway=*` way a car may use: not an area, not private, not a parking aisle."""
    highway = tags.get("highway", "")
    if highway not in DEFAULT_LANES or tags.get("area") == "yes":
        return False
    if tags.get("access") in {"no", "private"} or tags.get("motor_vehicle") == "no":
        return False
    return not (highway == "service" and tags.get("service") in EXCLUDED_SERVICE)


def oneway_direction(tags: dict[str, str]) -> int:
    """+1 one-way along the way, -1 one-way against it, 0 two-way."""
    value = tags.get("oneway", "")
    if value in {"yes", "true", "1"}:
        return 1
    if value in {"-1", "reverse"}:
        return -1
    implied = tags.get("highway") in {"motorway", "motorway_link"} or tags.get("junction") in {
        "roundabout",
        "circular",
    }
    return 1 if implied and value != "no" else 0


def lanes_of(tags: dict[str, str]) -> int:
    """`lanes=*` clamped to 1..8, else the class default (one lane each way on a one-way road)."""
    try:
        return max(1, min(8, int(tags.get("lanes", ""))))
    except ValueError:
        return DEFAULT_LANES[tags["highway"]] if oneway_direction(tags) == 0 else 1


def _read_ways(osm_path: Path) -> list[_Way]:
    ways: list[_Way] = []
    processor = (
        osmium.FileProcessor(str(osm_path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for way in processor:
        if not isinstance(way, osmium.osm.Way):
            continue
        tags = {tag.k: tag.v for tag in way.tags}
        if not is_drivable(tags):
            continue
        nodes = [n for n in way.nodes if n.location.valid()]
        if len(nodes) < 2:
            continue
        lonlat = [(n.location.lon, n.location.lat) for n in nodes]
        ways.append(_Way(way.id, tags, [n.ref for n in nodes], lonlat))
    return ways


def _split_points(ways: list[_Way]) -> set[int]:
    uses: Counter[int] = Counter()
    ends: set[int] = set()
    for way in ways:
        uses.update(way.node_ids)
        ends.update((way.node_ids[0], way.node_ids[-1]))
    return ends | {node for node, count in uses.items() if count > 1}


def _segments_of(way: _Way, split_nodes: set[int]) -> list[RoadSegment]:
    direction = oneway_direction(way.tags)
    lanes = lanes_of(way.tags)
    pieces = []
    for start, end in split_at(way.node_ids, split_nodes):
        node_ids, lonlat = way.node_ids[start : end + 1], way.lonlat[start : end + 1]
        if direction < 0:  # digitised in the legal driving direction
            node_ids, lonlat = node_ids[::-1], lonlat[::-1]
        pieces.append(
            make_segment(
                way.way_id,
                node_ids,
                lonlat,
                road_class=way.tags["highway"],
                oneway=direction != 0,
                lanes=lanes,
            )
        )
    return pieces


def read_osm_segments(osm_path: Path, *, bbox: BBox | None = None) -> list[RoadSegment]:
    """Drivable ways of an OSM extract, split at every shared node, in a stable order."""
    if not osm_path.is_file():
        msg = f"OSM file {osm_path} does not exist: pass the path of an .osm.pbf extract"
        raise RoadFileError(msg)
    try:
        ways = _read_ways(osm_path)
    except RuntimeError as exc:
        msg = f"cannot read {osm_path} as OSM data ({exc}): pass an .osm.pbf or .osm file"
        raise RoadFileError(msg) from exc
    split_nodes = _split_points(ways)
    # Split on the whole extract, then keep what touches the box: a segment gets the same id with
    # or without a bbox, and roads crossing the box edge are kept whole rather than dropped.
    segments = keep_in_bbox([s for way in ways for s in _segments_of(way, split_nodes)], bbox)
    if not segments:
        where = f" inside bbox {bbox}" if bbox else ""
        msg = f"{osm_path} holds no drivable roads{where}: choose an extract or area with roads"
        raise NoRoadsError(msg)
    return sorted(segments, key=lambda s: s.segment_id)
