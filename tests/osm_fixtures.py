"""Small OSM extracts written by the tests: a grid of streets around a centre point."""

from __future__ import annotations

import math
from pathlib import Path

import osmium

LON0, LAT0 = 24.94, 60.17
METRES_PER_DEG_LAT = 111_320.0


def _lonlat(east_m: float, north_m: float) -> tuple[float, float]:
    lon = LON0 + east_m / (METRES_PER_DEG_LAT * math.cos(math.radians(LAT0)))
    return lon, LAT0 + north_m / METRES_PER_DEG_LAT


def write_grid_osm(
    path: Path, *, blocks: int = 3, spacing_m: float = 120.0, with_roads: bool = True
) -> Path:
    """A `blocks` x `blocks` grid of streets, one wide primary avenue, one one-way street, a
    footway and a building; written with osmium in the format its suffix names (.osm or .osm.pbf).
    With `with_roads=False` only the footway and the building are written."""
    if path.exists():
        path.unlink()
    writer = osmium.SimpleWriter(str(path))
    node_id = 1
    grid: dict[tuple[int, int], int] = {}
    try:
        for i in range(blocks + 1):
            for j in range(blocks + 1):
                lon, lat = _lonlat(j * spacing_m, i * spacing_m)
                writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat)))
                grid[(i, j)] = node_id
                node_id += 1
        ways = _grid_ways(grid, blocks) if with_roads else []
        ways.append(([grid[(0, 0)], grid[(1, 1)]], {"highway": "footway"}))
        ways.append(([grid[(0, 1)], grid[(1, 2)], grid[(0, 2)]], {"building": "yes"}))
        for way_id, (nodes, tags) in enumerate(ways, start=100):
            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=nodes, tags=tags))
    finally:
        writer.close()
    return path


def _grid_ways(
    grid: dict[tuple[int, int], int], blocks: int
) -> list[tuple[list[int], dict[str, str]]]:
    ways: list[tuple[list[int], dict[str, str]]] = []
    for i in range(blocks + 1):
        tags = {"highway": "primary", "lanes": "4"} if i == 1 else {"highway": "residential"}
        ways.append(([grid[(i, j)] for j in range(blocks + 1)], tags))
    for j in range(blocks + 1):
        tags = (
            {"highway": "residential", "oneway": "yes"}
            if j == blocks
            else {"highway": "residential"}
        )
        ways.append(([grid[(i, j)] for i in range(blocks + 1)], tags))
    return ways
