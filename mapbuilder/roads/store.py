"""Road files in and out: a saved network (GeoJSON with a format marker), an OSM extract, or any
vector file of lines, all read through `read_network`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mapbuilder.errors import NetworkFormatError
from mapbuilder.roads.network import RoadNetwork
from mapbuilder.roads.osm import OSM_SUFFIXES, read_osm_segments
from mapbuilder.roads.segment import BBox, RoadSegment, keep_in_bbox
from mapbuilder.roads.vector import read_vector_segments

NETWORK_FORMAT = "roadswarm-road-network"
NETWORK_FORMAT_VERSION = 1
FIELDS = tuple(RoadSegment.__dataclass_fields__)


def segments_to_geojson(
    segments: list[RoadSegment] | tuple[RoadSegment, ...],
    *,
    lengths_m: list[float] | None = None,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of LineStrings in WGS84 with every segment attribute (and its
    length, where given) as a property."""
    features = []
    for k, segment in enumerate(segments):
        properties: dict[str, Any] = asdict(segment)
        coordinates = properties.pop("lonlat")
        if lengths_m is not None:
            properties["length_m"] = round(lengths_m[k], 3)
        features.append(
            {
                "type": "Feature",
                "id": segment.segment_id,
                "geometry": {"type": "LineString", "coordinates": coordinates},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def segments_from_geojson(data: dict[str, Any]) -> list[RoadSegment]:
    """The segments of a collection written by `segments_to_geojson` (extra properties ignored)."""
    segments = []
    for feature in data["features"]:
        properties = {k: v for k, v in feature["properties"].items() if k in FIELDS}
        coordinates = tuple((float(x), float(y)) for x, y in feature["geometry"]["coordinates"])
        segments.append(RoadSegment(**properties, lonlat=coordinates))
    return segments


def dump_network(network: RoadNetwork) -> bytes:
    """The network as compact GeoJSON that `read_network` loads without re-importing its source."""
    data = segments_to_geojson(network.segments, lengths_m=network.length_m.tolist())
    data[NETWORK_FORMAT] = {"format_version": NETWORK_FORMAT_VERSION, "source": network.source}
    return json.dumps(data, separators=(",", ":")).encode()


def _saved_network(path: Path) -> list[RoadSegment] | None:
    """The segments of a saved network, or None when `path` is some other file."""
    if path.suffix.lower() not in {".json", ".geojson"} or not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None  # not JSON we wrote: let the vector reader say what is wrong with it
    if not isinstance(data, dict) or NETWORK_FORMAT not in data:
        return None
    version = (
        data[NETWORK_FORMAT].get("format_version")
        if isinstance(data[NETWORK_FORMAT], dict)
        else None
    )
    if version != NETWORK_FORMAT_VERSION:
        msg = (
            f"{path} is a road network of format version {version}, this version reads "
            f"{NETWORK_FORMAT_VERSION}: import its source again with `roadswarm map roads import`"
        )
        raise NetworkFormatError(msg)
    try:
        return segments_from_geojson(data)
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path} is a damaged road network ({exc!r}): import its source again"
        raise NetworkFormatError(msg) from exc


def read_segments(path: Path, *, bbox: BBox | None = None) -> list[RoadSegment]:
    """Road segments from a saved network, an OSM extract (.osm.pbf, .osm…) or a vector file."""
    saved = _saved_network(path)
    if saved is not None:
        return keep_in_bbox(saved, bbox)
    if path.name.lower().endswith(OSM_SUFFIXES):
        return read_osm_segments(path, bbox=bbox)
    return read_vector_segments(path, bbox=bbox)


def read_network(path: Path, *, bbox: BBox | None = None) -> RoadNetwork:
    """A matchable network from any road file `read_segments` reads."""
    return RoadNetwork(read_segments(path, bbox=bbox), source=str(path))
