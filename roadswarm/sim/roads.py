"""The drivable road network of a world: OSM ways split at intersections into stable segments."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import osmium

from roadswarm.errors import UserInputError
from roadswarm.sim.errors import NoRoadsError

BBox = tuple[float, float, float, float]

# Ways a car may drive on, and how many lanes each class has when OSM does not say.
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
EXCLUDED_SERVICE = {"parking_aisle", "driveway", "drive-through"}


@dataclass(frozen=True)
class RoadSegment:
    """A drivable OSM way between two intersections (or ends), digitised in its driving direction."""

    segment_id: str
    source_id: int
    road_class: str
    oneway: bool
    lanes: int
    width_m: float
    speed_kmh: float
    start_node: int
    end_node: int
    lonlat: tuple[tuple[float, float], ...]

    @property
    def base_class(self) -> str:
        return self.road_class.removesuffix("_link")


def segment_id_for(way_id: int, node_ids: list[int]) -> str:
    """Same way and nodes, same id: an unchanged segment keeps its id across OSM updates."""
    digest = hashlib.sha1(f"{way_id}:{','.join(map(str, node_ids))}".encode()).hexdigest()
    return f"s{digest[:15]}"


@dataclass
class _Way:
    way_id: int
    tags: dict[str, str]
    node_ids: list[int]
    lonlat: list[tuple[float, float]]


def _is_drivable(tags: dict[str, str]) -> bool:
    highway = tags.get("highway", "")
    if highway not in DEFAULT_LANES or tags.get("area") == "yes":
        return False
    if tags.get("access") in {"no", "private"} or tags.get("motor_vehicle") == "no":
        return False
    return not (highway == "service" and tags.get("service") in EXCLUDED_SERVICE)


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
        if not _is_drivable(tags):
            continue
        nodes = [n for n in way.nodes if n.location.valid()]
        lonlat = [(n.location.lon, n.location.lat) for n in nodes]
        if len(nodes) < 2:
            continue
        ways.append(_Way(way.id, tags, [n.ref for n in nodes], lonlat))
    return ways


def _inside(point: tuple[float, float], bbox: BBox) -> bool:
    return bbox[0] <= point[0] <= bbox[2] and bbox[1] <= point[1] <= bbox[3]


def _oneway_direction(tags: dict[str, str]) -> int:
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


def _lanes(tags: dict[str, str]) -> int:
    try:
        return max(1, min(8, int(tags.get("lanes", ""))))
    except ValueError:
        return DEFAULT_LANES[tags["highway"]] if _oneway_direction(tags) == 0 else 1


def _split_points(ways: list[_Way]) -> set[int]:
    uses: Counter[int] = Counter()
    ends: set[int] = set()
    for way in ways:
        uses.update(way.node_ids)
        ends.update((way.node_ids[0], way.node_ids[-1]))
    return ends | {node for node, count in uses.items() if count > 1}


def _segments_of(way: _Way, split_at: set[int]) -> list[RoadSegment]:
    direction = _oneway_direction(way.tags)
    highway = way.tags["highway"]
    lanes = _lanes(way.tags)
    lane_width = LANE_WIDTH_M.get(highway.removesuffix("_link"), DEFAULT_LANE_WIDTH_M)
    pieces: list[RoadSegment] = []
    start = 0
    for i in range(1, len(way.node_ids)):
        if way.node_ids[i] not in split_at and i != len(way.node_ids) - 1:
            continue
        node_ids, lonlat = way.node_ids[start : i + 1], way.lonlat[start : i + 1]
        if direction < 0:
            node_ids, lonlat = node_ids[::-1], lonlat[::-1]
        pieces.append(
            RoadSegment(
                segment_id=segment_id_for(way.way_id, node_ids),
                source_id=way.way_id,
                road_class=highway,
                oneway=direction != 0,
                lanes=lanes,
                width_m=round(lanes * lane_width, 2),
                speed_kmh=SPEED_KMH.get(highway.removesuffix("_link"), 30.0),
                start_node=node_ids[0],
                end_node=node_ids[-1],
                lonlat=tuple(lonlat),
            )
        )
        start = i
    return pieces


def read_road_segments(osm_path: Path, bbox: BBox | None = None) -> list[RoadSegment]:
    """Drivable ways of an OSM extract, split at every shared node, in a stable order."""
    if not osm_path.is_file():
        msg = f"OSM file {osm_path} does not exist: pass the path of an .osm.pbf extract"
        raise UserInputError(msg)
    try:
        ways = _read_ways(osm_path)
    except RuntimeError as exc:
        msg = f"cannot read {osm_path} as OSM data ({exc}): pass an .osm.pbf or .osm file"
        raise UserInputError(msg) from exc
    split_at = _split_points(ways)
    # Split on the whole extract, then keep what touches the box: a segment gets the same id with
    # or without a bbox, and roads crossing the box edge are kept whole rather than dropped.
    segments = [s for way in ways for s in _segments_of(way, split_at)]
    if bbox:
        segments = [s for s in segments if any(_inside(p, bbox) for p in s.lonlat)]
    if not segments:
        where = f" inside bbox {bbox}" if bbox else ""
        msg = f"{osm_path} holds no drivable roads{where}: choose an extract or area with roads"
        raise NoRoadsError(msg)
    return sorted(segments, key=lambda s: s.segment_id)


def write_roads_geojson(segments: list[RoadSegment], path: Path) -> None:
    """GeoJSON LineStrings in WGS84 with every segment attribute as a property."""
    features = []
    for segment in segments:
        properties: dict[str, Any] = asdict(segment)
        coordinates = properties.pop("lonlat")
        features.append(
            {
                "type": "Feature",
                "id": segment.segment_id,
                "geometry": {"type": "LineString", "coordinates": coordinates},
                "properties": properties,
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def read_roads_geojson(path: Path) -> list[RoadSegment]:
    """The segments written by `write_roads_geojson`."""
    data = json.loads(path.read_text())
    return [
        RoadSegment(
            **feature["properties"],
            lonlat=tuple(tuple(p) for p in feature["geometry"]["coordinates"]),
        )
        for feature in data["features"]
    ]
