"""The drivable road network: segments from OSM or vector files, stable ids, a directed graph."""

from __future__ import annotations

from mapbuilder.roads.network import RoadNetwork
from mapbuilder.roads.segment import BBox, RoadSegment, segment_id_for
from mapbuilder.roads.store import dump_network, read_network, read_segments

__all__ = [
    "BBox",
    "RoadNetwork",
    "RoadSegment",
    "dump_network",
    "read_network",
    "read_segments",
    "segment_id_for",
]
