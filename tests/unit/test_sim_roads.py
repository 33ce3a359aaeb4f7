"""Tests of `roadswarm.sim.roads`: drivable OSM ways split into stable road segments."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import osmium
import pytest

from roadswarm.errors import UserInputError
from roadswarm.sim.errors import NoRoadsError
from roadswarm.sim.roads import (
    BBox,
    RoadSegment,
    read_road_segments,
    read_roads_geojson,
    segment_id_for,
    write_roads_geojson,
)
from tests.osm_fixtures import write_grid_osm

BLOCKS = 3
GRID_SEGMENTS = 2 * (BLOCKS + 1) * BLOCKS  # 4 horizontal + 4 vertical ways, 3 pieces each
EXTRA_WAY_ID = 900
EXTRA_NODE_ID = 9000
LINE_LONLAT = ((24.940, 60.170), (24.941, 60.170), (24.942, 60.170))


@pytest.fixture(scope="module")
def grid_segments(grid_osm: Path) -> list[RoadSegment]:
    """The segments of the shared 3 x 3 block grid."""
    return read_road_segments(grid_osm)


def _copy_with_extra_way(
    src: Path, dst: Path, *, new_nodes: dict[int, tuple[float, float]], way_nodes: list[int]
) -> Path:
    """A copy of `src` with extra nodes and one extra residential way through `way_nodes`."""
    writer = osmium.SimpleWriter(str(dst))
    try:
        for node in osmium.FileProcessor(str(src), osmium.osm.NODE):
            writer.add_node(node)
        for node_id, location in new_nodes.items():
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=location))
        for way in osmium.FileProcessor(str(src), osmium.osm.WAY):
            writer.add_way(way)
        writer.add_way(
            osmium.osm.mutable.Way(
                id=EXTRA_WAY_ID, nodes=way_nodes, tags={"highway": "residential"}
            )
        )
    finally:
        writer.close()
    return dst


def _write_line(path: Path, tags: dict[str, str]) -> Path:
    """A single three-node way, digitised west to east, with `tags`."""
    writer = osmium.SimpleWriter(str(path))
    try:
        for node_id, location in enumerate(LINE_LONLAT, start=1):
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=location))
        writer.add_way(osmium.osm.mutable.Way(id=7, nodes=[1, 2, 3], tags=tags))
    finally:
        writer.close()
    return path


def _west_columns_bbox(segments: list[RoadSegment]) -> BBox:
    """A box around the two westernmost north-south streets of the grid, and nothing else."""
    lons = sorted({p[0] for s in segments for p in s.lonlat})
    lats = [p[1] for s in segments for p in s.lonlat]
    eps = 1e-6
    return lons[0] - eps, min(lats) - eps, lons[1] + eps, max(lats) + eps


def _inside(point: tuple[float, float], bbox: BBox) -> bool:
    """Whether a lon/lat point lies in a (west, south, east, north) box."""
    return bbox[0] <= point[0] <= bbox[2] and bbox[1] <= point[1] <= bbox[3]


def test_grid_is_split_at_every_intersection(grid_segments: list[RoadSegment]) -> None:
    """Every way is cut at each crossing: 24 two-node segments meeting 2, 3 or 4 at a node."""
    assert len(grid_segments) == GRID_SEGMENTS
    assert all(len(s.lonlat) == 2 for s in grid_segments)
    degree = Counter(n for s in grid_segments for n in (s.start_node, s.end_node))
    assert len(degree) == (BLOCKS + 1) ** 2
    assert sorted(Counter(degree.values()).items()) == [(2, 4), (3, 8), (4, 4)]


def test_segments_follow_their_ways_nodes(grid_segments: list[RoadSegment]) -> None:
    """Consecutive pieces of one way share their end and start nodes, and ids are unique."""
    assert len({s.segment_id for s in grid_segments}) == GRID_SEGMENTS
    by_way: dict[int, list[RoadSegment]] = {}
    for segment in grid_segments:
        by_way.setdefault(segment.source_id, []).append(segment)
    assert len(by_way) == 2 * (BLOCKS + 1)
    for pieces in by_way.values():
        starts = {s.start_node for s in pieces}
        ends = {s.end_node for s in pieces}
        assert len(starts & ends) == BLOCKS - 1  # the interior junctions of the way


def test_footway_and_building_are_not_roads(grid_segments: list[RoadSegment]) -> None:
    """Only the streets become segments: no footway, no building outline, no diagonal line."""
    assert {s.road_class for s in grid_segments} == {"primary", "residential"}
    for segment in grid_segments:
        (lon0, lat0), (lon1, lat1) = segment.lonlat
        assert lon0 == lon1 or lat0 == lat1


def test_one_way_street_is_flagged_and_keeps_its_direction(
    grid_segments: list[RoadSegment],
) -> None:
    """The easternmost street is one-way northwards with one lane; every other street is two-way."""
    one_way = [s for s in grid_segments if s.oneway]
    assert len(one_way) == BLOCKS
    assert len({s.source_id for s in one_way}) == 1
    east = max(p[0] for s in grid_segments for p in s.lonlat)
    for segment in one_way:
        (lon0, lat0), (lon1, lat1) = segment.lonlat
        assert lon0 == lon1 == east
        assert lat1 > lat0
        assert (segment.lanes, segment.width_m) == (1, 3.0)


def test_lanes_and_width(grid_segments: list[RoadSegment]) -> None:
    """The lanes=4 primary is 4 x 3.25 m wide; two-way residential streets default to 2 x 3 m."""
    primary = [s for s in grid_segments if s.road_class == "primary"]
    assert len(primary) == BLOCKS
    assert all(s.lanes == 4 and s.width_m == pytest.approx(4 * 3.25) for s in primary)
    assert all(s.speed_kmh == 50 for s in primary)
    residential = [s for s in grid_segments if s.road_class == "residential" and not s.oneway]
    assert residential
    assert all((s.lanes, s.width_m) == (2, 6.0) for s in residential)


def test_ids_are_stable_across_reads(grid_osm: Path, grid_segments: list[RoadSegment]) -> None:
    """Reading the same extract again gives the same segments in the same order."""
    assert read_road_segments(grid_osm) == grid_segments


def test_ids_survive_an_unrelated_new_way(
    grid_osm: Path, grid_segments: list[RoadSegment], tmp_path: Path
) -> None:
    """A new street that touches nothing leaves every existing segment and id unchanged."""
    west = min(p[0] for s in grid_segments for p in s.lonlat) - 0.01
    lat = grid_segments[0].lonlat[0][1]
    new_nodes = {EXTRA_NODE_ID: (west, lat), EXTRA_NODE_ID + 1: (west, lat + 0.002)}
    updated = read_road_segments(
        _copy_with_extra_way(
            grid_osm, tmp_path / "updated.osm.pbf", new_nodes=new_nodes, way_nodes=list(new_nodes)
        )
    )
    assert len(updated) == GRID_SEGMENTS + 1
    assert set(grid_segments) < set(updated)
    (added,) = set(updated) - set(grid_segments)
    assert added.source_id == EXTRA_WAY_ID


def test_ids_survive_a_new_way_at_an_existing_junction(
    grid_osm: Path, grid_segments: list[RoadSegment], tmp_path: Path
) -> None:
    """A new street joining at an existing intersection does not renumber any segment."""
    junction = next(s for s in grid_segments if s.road_class == "primary").end_node
    lon, lat = next(s.lonlat[-1] for s in grid_segments if s.end_node == junction)
    new_nodes = {EXTRA_NODE_ID: (lon + 0.0005, lat + 0.0005)}
    updated = read_road_segments(
        _copy_with_extra_way(
            grid_osm,
            tmp_path / "joined.osm.pbf",
            new_nodes=new_nodes,
            way_nodes=[junction, EXTRA_NODE_ID],
        )
    )
    assert set(grid_segments) < set(updated)
    assert len(updated) == GRID_SEGMENTS + 1


@pytest.mark.parametrize("value", ["-1", "reverse"])
def test_reverse_one_way_is_digitised_in_driving_direction(tmp_path: Path, value: str) -> None:
    """A way tagged oneway=-1 is reversed: it starts at its last node and is flagged one-way."""
    osm = _write_line(tmp_path / "reverse.osm", {"highway": "residential", "oneway": value})
    (segment,) = read_road_segments(osm)
    assert segment.oneway
    assert (segment.start_node, segment.end_node) == (3, 1)
    assert segment.lonlat == tuple(reversed(LINE_LONLAT))
    assert segment.segment_id == segment_id_for(7, [3, 2, 1])
    assert segment.lanes == 1


@pytest.mark.parametrize(
    ("tags", "oneway"),
    [
        ({"highway": "residential", "oneway": "yes"}, True),
        ({"highway": "residential", "oneway": "no"}, False),
        ({"highway": "residential"}, False),
        ({"highway": "motorway"}, True),
        ({"highway": "motorway", "oneway": "no"}, False),
        ({"highway": "tertiary", "junction": "roundabout"}, True),
    ],
)
def test_forward_and_implied_one_way(tmp_path: Path, tags: dict[str, str], oneway: bool) -> None:
    """Ways that are not reversed keep their node order; motorways and roundabouts imply one-way."""
    (segment,) = read_road_segments(_write_line(tmp_path / "line.osm.pbf", tags))
    assert segment.oneway is oneway
    assert (segment.start_node, segment.end_node) == (1, 3)
    assert segment.lonlat == LINE_LONLAT


@pytest.mark.parametrize(
    "tags",
    [
        {"highway": "footway"},
        {"highway": "cycleway"},
        {"highway": "residential", "access": "private"},
        {"highway": "residential", "motor_vehicle": "no"},
        {"highway": "service", "service": "parking_aisle"},
        {"highway": "pedestrian", "area": "yes"},
        {"highway": "residential", "area": "yes"},
    ],
)
def test_ways_a_car_may_not_use_are_not_roads(tmp_path: Path, tags: dict[str, str]) -> None:
    """An extract whose only way is closed to cars holds no drivable roads."""
    with pytest.raises(NoRoadsError):
        read_road_segments(_write_line(tmp_path / "closed.osm.pbf", tags))


def test_bbox_keeps_whole_segments_that_touch_it(
    grid_osm: Path, grid_segments: list[RoadSegment]
) -> None:
    """With a bbox, the segments touching it are kept whole and keep the ids of a full read."""
    bbox = _west_columns_bbox(grid_segments)
    inside = read_road_segments(grid_osm, bbox)
    expected = [s for s in grid_segments if any(_inside(p, bbox) for p in s.lonlat)]
    assert 0 < len(inside) < len(grid_segments)
    assert inside == expected
    assert all(any(_inside(p, bbox) for p in s.lonlat) for s in inside)


def test_geojson_round_trip(grid_segments: list[RoadSegment], tmp_path: Path) -> None:
    """Segments written as GeoJSON read back equal, in the same order."""
    path = tmp_path / "roads.geojson"
    write_roads_geojson(grid_segments, path)
    assert read_roads_geojson(path) == grid_segments


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    """A path that does not exist is reported with the path in the message."""
    missing = tmp_path / "nowhere" / "city.osm.pbf"
    with pytest.raises(UserInputError, match="does not exist") as caught:
        read_road_segments(missing)
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("name", ["noise.osm.pbf", "noise.osm", "noise.txt"])
def test_non_osm_file_is_a_user_error(tmp_path: Path, name: str) -> None:
    """Random bytes under an OSM name are reported as unreadable OSM data, not a crash."""
    path = tmp_path / name
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(UserInputError, match=r"cannot read .* as OSM data") as caught:
        read_road_segments(path)
    assert not isinstance(caught.value, NoRoadsError)


def test_extract_without_roads_is_a_no_roads_error(tmp_path: Path) -> None:
    """An extract holding only a footway and a building has no drivable roads."""
    osm = write_grid_osm(tmp_path / "paths.osm.pbf", with_roads=False)
    with pytest.raises(NoRoadsError, match="no drivable roads"):
        read_road_segments(osm)


def test_bbox_without_roads_is_a_no_roads_error(grid_osm: Path) -> None:
    """A bbox far from every road is a NoRoadsError that names the bbox."""
    with pytest.raises(NoRoadsError, match="inside bbox"):
        read_road_segments(grid_osm, (0.0, 0.0, 1.0, 1.0))
