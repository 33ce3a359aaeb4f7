"""Tests of `mapbuilder.roads`: OSM and vector imports, stable ids, the directed graph, saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapely

from mapbuilder.errors import NetworkFormatError, NoRoadsError, RoadFileError
from mapbuilder.roads import RoadNetwork, dump_network, read_network, read_segments
from mapbuilder.roads.osm import read_osm_segments
from mapbuilder.roads.vector import node_id_for
from roadswarm.sim.roads import read_road_segments

# Three streets of a "T": a two-way main street in two features sharing a vertex, a one-way side
# street digitised against its direction, and a footway that is not a road.
MAIN_WEST = [(24.940, 60.170), (24.942, 60.170)]
MAIN_EAST = [(24.942, 60.170), (24.944, 60.170)]
SIDE = [(24.942, 60.172), (24.942, 60.171), (24.942, 60.170)]
FOOTWAY = [(24.940, 60.171), (24.944, 60.171)]


def _feature(coords: list[tuple[float, float]], **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": properties,
    }


def _write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    """A GeoJSON FeatureCollection of `features`."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _t_junction(path: Path) -> Path:
    """The T of streets as GeoJSON with `id`, `oneway` and `highway` properties."""
    return _write_geojson(
        path,
        [
            _feature(MAIN_WEST, id=11, highway="secondary"),
            _feature(MAIN_EAST, id=12, highway="secondary"),
            _feature(SIDE, id=13, oneway="-1", highway="residential"),
            _feature(FOOTWAY, id=14, highway="footway"),
        ],
    )


def test_osm_import_matches_the_simulators_segments(grid_osm: Path) -> None:
    """The map builder and the simulator read the same segments with the same ids."""
    assert read_osm_segments(grid_osm) == read_road_segments(grid_osm)


def test_directed_graph_of_the_grid(grid_osm: Path) -> None:
    """24 segments: two directions each, except the 3 one-way ones; lengths near 120 m."""
    network = read_network(grid_osm)
    assert (len(network.segments), network.node_count) == (24, 16)
    assert int(network.graph.edge_usable.sum()) == 2 * 24 - 3
    assert np.allclose(network.length_m, 120.0, atol=0.5)
    assert np.allclose(network.length_m, network.local_length_m, rtol=1e-5)


def test_vector_lines_are_split_and_directed(tmp_path: Path) -> None:
    """The side street meets the main street's shared vertex: 3 segments, footway dropped,
    oneway=-1 reversed, source ids from the `id` property, classes from `highway`."""
    segments = read_segments(_t_junction(tmp_path / "t.geojson"))
    assert sorted(s.source_id for s in segments) == [11, 12, 13]
    side = next(s for s in segments if s.source_id == 13)
    assert side.oneway and side.lonlat == tuple(reversed(SIDE))
    assert side.road_class == "residential"
    junction = node_id_for(*MAIN_EAST[0])
    assert sum(junction in (s.start_node, s.end_node) for s in segments) == 3


def test_vector_ids_are_stable_and_survive_an_unrelated_edit(tmp_path: Path) -> None:
    """Re-importing gives the same ids; adding a far-away street changes none of them."""
    first = read_segments(_t_junction(tmp_path / "a.geojson"))
    again = read_segments(_t_junction(tmp_path / "b.geojson"))
    assert first == again
    data = json.loads((tmp_path / "a.geojson").read_text())
    data["features"].append(_feature([(24.95, 60.18), (24.951, 60.18)], id=99))
    updated = read_segments(_write_geojson(tmp_path / "c.geojson", data["features"]))
    assert set(first) < set(updated) and len(updated) == len(first) + 1


def test_geopackage_in_another_crs(tmp_path: Path) -> None:
    """Lines stored in Web Mercator (GeoPackage) are read back in WGS84 degrees."""
    path = tmp_path / "roads.gpkg"
    line = shapely.LineString(MAIN_WEST + MAIN_EAST[1:])
    mercator = shapely.transform(
        line,
        lambda xy: np.column_stack(
            [
                np.radians(xy[:, 0]) * 6378137.0,
                np.log(np.tan(np.pi / 4 + np.radians(xy[:, 1]) / 2)) * 6378137.0,
            ]
        ),
    )
    pyogrio.raw.write(
        str(path),
        np.array([shapely.to_wkb(mercator)], dtype=object),
        [np.array(["yes"], dtype=object)],
        ["oneway"],
        driver="GPKG",
        geometry_type="LineString",
        crs="EPSG:3857",
    )
    (segment,) = read_segments(path)
    assert segment.oneway and segment.road_class == "road"
    assert np.allclose(segment.lonlat, MAIN_WEST + MAIN_EAST[1:], atol=1e-7)


def test_saved_network_loads_as_it_was(grid_osm: Path, tmp_path: Path) -> None:
    """A dumped network reads back with the same segments, lengths and graph."""
    network = read_network(grid_osm)
    path = tmp_path / "grid.geojson"
    path.write_bytes(dump_network(network))
    loaded = read_network(path)
    assert loaded.segments == network.segments
    assert np.allclose(loaded.length_m, network.length_m)
    assert np.array_equal(loaded.graph.edge_usable, network.graph.edge_usable)


def test_saved_network_of_another_version_is_refused(grid_osm: Path, tmp_path: Path) -> None:
    """A network file of an unknown format version says to import again."""
    data = json.loads(dump_network(read_network(grid_osm)))
    data["roadswarm-road-network"]["format_version"] = 99
    path = tmp_path / "old.geojson"
    path.write_text(json.dumps(data))
    with pytest.raises(NetworkFormatError, match="import its source again"):
        read_network(path)


def test_road_file_without_lines_is_a_no_roads_error(tmp_path: Path) -> None:
    """A vector file of points only, or of footways only, holds no roads."""
    points = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [24.9, 60.1]},
        "properties": {},
    }
    with pytest.raises(NoRoadsError, match="no road lines"):
        read_segments(_write_geojson(tmp_path / "points.geojson", [points]))
    with pytest.raises(NoRoadsError):
        read_segments(
            _write_geojson(tmp_path / "paths.geojson", [_feature(FOOTWAY, highway="footway")])
        )


@pytest.mark.parametrize("name", ["missing.gpkg", "junk.gpkg", "junk.geojson"])
def test_unreadable_road_files_are_road_file_errors(tmp_path: Path, name: str) -> None:
    """A missing file or one GDAL cannot read is a RoadFileError naming the file."""
    path = tmp_path / name
    if name.startswith("junk"):
        path.write_bytes(b"\x00not a vector file" * 10)
    with pytest.raises(RoadFileError, match=str(path)):
        read_segments(path)


def test_non_integer_ids_are_refused(tmp_path: Path) -> None:
    """A text `id` cannot be a source id: the error says to use whole numbers."""
    with pytest.raises(RoadFileError, match="not a whole number"):
        read_segments(_write_geojson(tmp_path / "ids.geojson", [_feature(MAIN_WEST, id="abc")]))


def test_empty_network_is_refused() -> None:
    """A network needs a segment."""
    with pytest.raises(NoRoadsError):
        RoadNetwork([])
