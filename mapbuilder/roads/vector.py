"""Roads from any vector file GDAL reads (GeoPackage, GeoJSON, Shapefile…) holding LineStrings.

Lines are split where they share a vertex (as OSM ways are at shared nodes); a vertex's node id is
a hash of its coordinates to 1e-7 degrees, so re-importing an unchanged file gives the same segment
ids and an edit elsewhere does not renumber anything. `source_id` is the integer `id` property, or
the feature id where there is none (a GeoPackage fid, a GeoJSON feature id).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import shapely
from pyogrio.errors import DataSourceError
from pyproj import CRS, Transformer

from mapbuilder.errors import NoRoadsError, RoadFileError
from mapbuilder.roads.segment import (
    DEFAULT_LANES,
    DEFAULT_ROAD_CLASS,
    BBox,
    LonLat,
    RoadSegment,
    keep_in_bbox,
    make_segment,
    split_at,
)

CLASS_FIELDS = ("highway", "road_class", "class", "fclass")
# Lines of these classes are paths, not roads: files cut from OSM often hold them too.
NOT_FOR_CARS = {"footway", "cycleway", "path", "pedestrian", "steps", "bridleway", "corridor"}
ONEWAY_FORWARD = {"yes", "true", "1"}
ONEWAY_BACKWARD = {"-1", "reverse"}
COORDINATE_SCALE = 1e7
Line = tuple[int, list[LonLat], dict[str, Any]]


def node_id_for(lon: float, lat: float) -> int:
    """A stable, positive 63-bit id for a vertex, from its coordinates to 1e-7 degrees (~1 cm)."""
    key = f"{round(lon * COORDINATE_SCALE)},{round(lat * COORDINATE_SCALE)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1


def _read(path: Path) -> tuple[dict[str, Any], Any, Any, list[Any]]:
    if not path.is_file():
        msg = f"road file {path} does not exist: pass an OSM extract or a vector file of lines"
        raise RoadFileError(msg)
    try:
        meta, fids, geometry, fields = pyogrio.raw.read(str(path), return_fids=True)
    except (DataSourceError, RuntimeError) as exc:
        msg = (
            f"cannot read {path} as a vector file ({exc}): pass a GeoPackage, GeoJSON or Shapefile"
        )
        raise RoadFileError(msg) from exc
    return meta, fids, geometry, fields


def _to_wgs84(crs: str | None) -> Transformer | None:
    if crs is None or CRS.from_user_input(crs) == CRS.from_epsg(4326):
        return None
    return Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)


def _source_id(properties: dict[str, Any], fid: int, path: Path) -> int:
    value = properties.get("id")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return fid
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        msg = f"{path}: feature {fid} has id {value!r}, not a whole number: use integer ids or none"
        raise RoadFileError(msg)
    return int(number)


def _lines(path: Path) -> list[Line]:
    meta, fids, geometry, fields = _read(path)
    names = [str(n) for n in meta["fields"]]
    transformer = _to_wgs84(meta.get("crs"))
    lines: list[Line] = []
    for row, wkb in enumerate(geometry):
        if wkb is None:
            continue
        shape = shapely.from_wkb(wkb)
        parts = shapely.get_parts(shape) if shape.geom_type == "MultiLineString" else [shape]
        properties = {name: values[row] for name, values in zip(names, fields, strict=True)}
        for part in parts:
            if part.geom_type != "LineString" or part.is_empty:
                continue
            xy = np.asarray(shapely.get_coordinates(part), dtype=np.float64)
            if transformer is not None:
                xy = np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
            if not np.isfinite(xy).all():
                continue
            source = _source_id(properties, int(fids[row]), path)
            lines.append((source, [(float(x), float(y)) for x, y in xy], properties))
    return lines


def _text(properties: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = properties.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _direction(properties: dict[str, Any]) -> int:
    value = properties.get("oneway")
    if isinstance(value, bool | np.bool_):
        return 1 if value else 0
    text = str(value).strip().lower() if value is not None else ""
    if text in ONEWAY_BACKWARD:
        return -1
    return 1 if text in ONEWAY_FORWARD else 0


def _lanes(properties: dict[str, Any], road_class: str, direction: int) -> int:
    try:
        lanes = float(str(properties.get("lanes")))
    except ValueError:
        lanes = math.nan
    if math.isfinite(lanes):
        return max(1, min(8, int(lanes)))
    return DEFAULT_LANES.get(road_class, 2) if direction == 0 else 1


def _dedup(lonlat: list[LonLat]) -> tuple[list[int], list[LonLat]]:
    """Node ids and points with consecutive repeats of the same vertex removed."""
    nodes: list[int] = []
    points: list[LonLat] = []
    for lon, lat in lonlat:
        node = node_id_for(lon, lat)
        if not nodes or nodes[-1] != node:
            nodes.append(node)
            points.append((lon, lat))
    return nodes, points


def _segments(lines: list[Line]) -> list[RoadSegment]:
    ways = [(source, *_dedup(points), props) for source, points, props in lines]
    ways = [w for w in ways if len(w[1]) >= 2]
    uses: Counter[int] = Counter(n for _, nodes, _, _ in ways for n in nodes)
    splits = {n for n, count in uses.items() if count > 1}
    splits |= {n for _, nodes, _, _ in ways for n in (nodes[0], nodes[-1])}
    segments: dict[str, RoadSegment] = {}
    for source, nodes, points, props in ways:
        road_class = _text(props, CLASS_FIELDS) or DEFAULT_ROAD_CLASS
        if road_class in NOT_FOR_CARS:
            continue
        direction = _direction(props)
        lanes = _lanes(props, road_class, direction)
        for start, end in split_at(nodes, splits):
            piece_nodes, piece_points = nodes[start : end + 1], points[start : end + 1]
            if direction < 0:
                piece_nodes, piece_points = piece_nodes[::-1], piece_points[::-1]
            segment = make_segment(
                source,
                piece_nodes,
                piece_points,
                road_class=road_class,
                oneway=direction != 0,
                lanes=lanes,
            )
            segments.setdefault(segment.segment_id, segment)  # the same line twice is one road
    return list(segments.values())


def read_vector_segments(path: Path, *, bbox: BBox | None = None) -> list[RoadSegment]:
    """The LineStrings of a vector file as road segments, split at shared vertices, in a stable
    order; `oneway` (yes/true/1, -1/reverse), `lanes` and a class property are used when present."""
    segments = keep_in_bbox(_segments(_lines(path)), bbox)
    if not segments:
        where = f" inside bbox {bbox}" if bbox else ""
        msg = f"{path} holds no road lines{where}: give a file of LineStrings (roads)"
        raise NoRoadsError(msg)
    return sorted(segments, key=lambda s: s.segment_id)
