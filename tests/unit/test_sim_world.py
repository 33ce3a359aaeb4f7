"""Tests of `roadswarm.sim.world`: world folders, the lazily chunked orthophoto and its textures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.ops import polygonize

from roadswarm.sim.errors import WorldFormatError
from roadswarm.sim.ortho import ChunkPainter, RasterGrid
from roadswarm.sim.paint import build_paint
from roadswarm.sim.texture import (
    ASPHALT,
    GRASS,
    PAINT,
    PAVEMENT,
    Material,
    U8Image,
    material_texture,
)
from roadswarm.sim.world import WORLD_FORMAT_VERSION, World, build_world

RESOLUTION_M = 0.05
CHUNK_PX = 512
GRID_SEGMENTS = 24
SEED = 3
QUARTER_PX_M = RESOLUTION_M / 4
SAMPLE_PX = 20  # 1 m windows: big enough to average out grain, small enough to stay on a lane
MATERIALS = [GRASS, PAVEMENT, ASPHALT, PAINT]


@pytest.fixture
def fresh_world(grid_osm: Path, tmp_path: Path) -> World:
    """A world built from the grid extract into an empty folder; no chunk read yet."""
    return build_world(grid_osm, tmp_path / "world", seed=SEED)


@pytest.fixture
def world_copy(grid_world: World, tmp_path: Path) -> Path:
    """A copy of the grid world's metadata and roads (no chunks), free to damage."""
    root = tmp_path / "copy"
    root.mkdir()
    for name in ("world.json", "roads.geojson"):
        shutil.copy(grid_world.root / name, root / name)
    return root


def _files(folder: Path) -> set[str]:
    """Names of everything in a folder, or nothing if it does not exist."""
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _luma(image: U8Image) -> float:
    """Mean Rec. 601 luma of a BGR image."""
    b, g, r = (float(image[..., i].mean()) for i in range(3))
    return 0.114 * b + 0.587 * g + 0.299 * r


def _window_at(world: World, x_m: float, y_m: float) -> U8Image:
    """The SAMPLE_PX square of pixels centred on a local point."""
    col, row = world.grid.to_pixel(x_m, y_m)
    half = SAMPLE_PX // 2
    return world.ortho.read_pixels(int(col) - half, int(row) - half, SAMPLE_PX, SAMPLE_PX)


def _one_way_midpoints(world: World) -> list[tuple[float, float]]:
    """Midpoints of the one-lane one-way segments: bare asphalt, no lines or arrows."""
    points = [r.line.interpolate(0.5, normalized=True) for r in world.roads if r.oneway]
    return [(p.x, p.y) for p in points]


def _chunk_of(world: World, x_m: float, y_m: float) -> tuple[int, int]:
    """The chunk holding a local point."""
    col, row = world.grid.to_pixel(x_m, y_m)
    return int(col) // world.meta.chunk_px, int(row) // world.meta.chunk_px


def _set_version(root: Path) -> None:
    """Mark the world as written by a future roadswarm."""
    meta = json.loads((root / "world.json").read_text())
    meta["format_version"] = 999
    (root / "world.json").write_text(json.dumps(meta))


def _drop_bounds(root: Path) -> None:
    """Remove one required field from an otherwise valid world.json."""
    meta = json.loads((root / "world.json").read_text())
    del meta["bounds_m"]
    (root / "world.json").write_text(json.dumps(meta))


def test_build_writes_metadata_and_roads_but_no_chunks(fresh_world: World) -> None:
    """A new world folder holds world.json and roads.geojson; the orthophoto waits for a read."""
    assert _files(fresh_world.root) == {"world.json", "roads.geojson"}
    meta = json.loads((fresh_world.root / "world.json").read_text())
    assert meta["format_version"] == WORLD_FORMAT_VERSION
    assert meta["segment_count"] == GRID_SEGMENTS
    assert (meta["seed"], meta["resolution_m"], meta["chunk_px"]) == (SEED, RESOLUTION_M, CHUNK_PX)
    assert meta["source"] == "grid.osm.pbf"


def test_bounds_cover_every_road_on_whole_chunks(fresh_world: World) -> None:
    """The bounds hold every road with room to spare and are a whole number of chunks."""
    west, south, east, north = fresh_world.meta.bounds_m
    chunk_m = CHUNK_PX * RESOLUTION_M
    for value in fresh_world.meta.bounds_m:
        assert value / chunk_m == pytest.approx(round(value / chunk_m))
    xy = np.array([p for r in fresh_world.roads for p in r.xy])
    assert west < xy[:, 0].min() < xy[:, 0].max() < east
    assert south < xy[:, 1].min() < xy[:, 1].max() < north
    cols, rows = fresh_world.chunk_range()
    assert len(cols) * chunk_m == pytest.approx(east - west)
    assert len(rows) * chunk_m == pytest.approx(north - south)


def test_loaded_world_equals_built_world(fresh_world: World) -> None:
    """World.load reads back the same metadata and segments that build_world wrote."""
    loaded = World.load(fresh_world.root)
    assert loaded.meta == fresh_world.meta
    assert loaded.segments == fresh_world.segments


def test_read_bbox_has_one_pixel_per_5_cm(grid_world: World) -> None:
    """A 10 m x 5 m box at 5 cm/px is 200 x 100 pixels, anchored at its north-west pixel."""
    west, north = grid_world.grid.to_metres(1000, 1000)
    box = (
        west + QUARTER_PX_M,
        north - 5 + QUARTER_PX_M,
        west + 10 - QUARTER_PX_M,
        north - QUARTER_PX_M,
    )
    image, (x0, y0) = grid_world.ortho.read_bbox(box)
    assert image.shape == (100, 200, 3)
    assert image.dtype == np.uint8
    assert (x0, y0) == pytest.approx((west, north))


def test_read_bbox_of_pixel_aligned_box_has_no_extra_pixels(grid_world: World) -> None:
    """A box with edges on whole metres (pixel edges at 5 cm/px) is exactly 200 x 100 pixels."""
    image, _ = grid_world.ortho.read_bbox((-200.0, 100.0, -190.0, 105.0))
    assert image.shape == (100, 200, 3)


def test_read_renders_only_the_chunks_it_touches(fresh_world: World) -> None:
    """Reading a box around a chunk corner writes exactly the four chunks that meet there."""
    chunks = fresh_world.root / "ortho"
    x, y = fresh_world.grid.to_metres(5 * CHUNK_PX, 5 * CHUNK_PX)
    fresh_world.ortho.read_bbox((x - 1.01, y - 1.01, x + 1.01, y + 1.01))
    assert _files(chunks) == {"4_4.jpg", "5_4.jpg", "4_5.jpg", "5_5.jpg"}
    x, y = fresh_world.grid.to_metres(10.5 * CHUNK_PX, 10.5 * CHUNK_PX)
    fresh_world.ortho.read_bbox((x - 1.01, y - 1.01, x + 1.01, y + 1.01))
    assert _files(chunks) == {"4_4.jpg", "5_4.jpg", "4_5.jpg", "5_5.jpg", "10_10.jpg"}


def test_same_bbox_reads_the_same_pixels_from_memory_and_disk(grid_world: World) -> None:
    """A box read twice, and again by a world freshly loaded from disk, has identical pixels."""
    x, y = _one_way_midpoints(grid_world)[0]
    box = (x - 20.0, y - 20.0, x + 20.0, y + 20.0)  # 40 m: spans chunk borders both ways
    first, corner = grid_world.ortho.read_bbox(box)
    again, _ = grid_world.ortho.read_bbox(box)
    from_disk, disk_corner = World.load(grid_world.root).ortho.read_bbox(box)
    assert np.array_equal(first, again)
    assert np.array_equal(first, from_disk)
    assert corner == disk_corner


def test_window_across_a_chunk_border_equals_its_halves(grid_world: World) -> None:
    """A window straddling chunk borders equals its parts read separately by other worlds."""
    x, y = _one_way_midpoints(grid_world)[0]
    cx, cy = _chunk_of(grid_world, x, y)
    col, row = (cx + 1) * CHUNK_PX - 60, (cy + 1) * CHUNK_PX - 30
    whole = grid_world.ortho.read_pixels(col, row, 120, 60)
    left = World.load(grid_world.root).ortho.read_pixels(col, row, 60, 60)
    right = World.load(grid_world.root).ortho.read_pixels(col + 60, row, 60, 60)
    assert np.array_equal(whole, np.hstack([left, right]))
    top = World.load(grid_world.root).ortho.read_pixels(col, row, 120, 30)
    bottom = World.load(grid_world.root).ortho.read_pixels(col, row + 30, 120, 30)
    assert np.array_equal(whole, np.vstack([top, bottom]))


@pytest.mark.parametrize("material", MATERIALS, ids=lambda m: m.name)
def test_textures_are_continuous_across_chunk_borders(material: Material) -> None:
    """A texture window equals the windows on either side of a chunk border put together."""
    x0, y0 = CHUNK_PX - 40, 3 * CHUNK_PX - 24
    whole = material_texture(material, x0, y0, 80, 48, SEED)
    left = material_texture(material, x0, y0, 40, 48, SEED)
    right = material_texture(material, x0 + 40, y0, 40, 48, SEED)
    top = material_texture(material, x0, y0, 80, 24, SEED)
    bottom = material_texture(material, x0, y0 + 24, 80, 24, SEED)
    assert np.array_equal(whole, np.hstack([left, right]))
    assert np.array_equal(whole, np.vstack([top, bottom]))
    assert whole.std() > 0  # the textures do vary, so equality is not trivial


def test_painted_edges_have_no_seam_at_chunk_borders(grid_world: World) -> None:
    """Rendering a road area as one 1024 px chunk or as four 512 px chunks gives the same image."""
    paint = build_paint(grid_world.roads, SEED)
    grid = grid_world.grid
    double = RasterGrid(grid.origin_x_m, grid.origin_y_m, grid.resolution_m, 2 * CHUNK_PX)
    small, large = ChunkPainter(grid, paint, SEED), ChunkPainter(double, paint, SEED)
    vertical = [r for r in grid_world.roads if not r.oneway and abs(r.xy[0][0] - r.xy[-1][0]) < 1]
    for road in vertical[:2]:
        middle = road.line.interpolate(0.5, normalized=True)
        col, row = double.to_pixel(middle.x, middle.y)
        cx, cy = int(col) // (2 * CHUNK_PX), int(row) // (2 * CHUNK_PX)
        quads = [[small.render(2 * cx + i, 2 * cy + j) for i in (0, 1)] for j in (0, 1)]
        joined = np.vstack([np.hstack(row_of_chunks) for row_of_chunks in quads])
        diff = large.render(cx, cy).astype(np.int16) - joined.astype(np.int16)
        assert int(np.abs(diff).max()) <= 16


def test_asphalt_is_darker_than_grass(grid_world: World) -> None:
    """Bare asphalt on a road centreline is grey and darker than green grass far from any road."""
    lines = shapely.union_all([r.line for r in grid_world.roads])
    blocks = [p.centroid for p in polygonize(lines.geoms)]
    assert len(blocks) == 9
    assert min(lines.distance(p) for p in blocks) >= 40.0
    asphalt = np.stack([_window_at(grid_world, x, y) for x, y in _one_way_midpoints(grid_world)])
    grass = np.stack([_window_at(grid_world, p.x, p.y) for p in blocks])
    assert _luma(asphalt) < _luma(grass) - 5
    b, g, r = (float(asphalt[..., i].mean()) for i in range(3))
    assert max(b, g, r) - min(b, g, r) < 10
    b, g, r = (float(grass[..., i].mean()) for i in range(3))
    assert g > max(b, r) + 20


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda root: (root / "world.json").unlink(), "no world.json"),
        (_set_version, "version 999"),
        (
            lambda root: (root / "world.json").write_text('{"format": "roadswarm-world", '),
            "damaged",
        ),
        (lambda root: (root / "world.json").write_text("[1, 2]"), "damaged"),
        (lambda root: (root / "world.json").write_bytes(b"\xff\xfe\x00"), "damaged"),
        (_drop_bounds, "damaged"),
    ],
    ids=["missing", "future-version", "truncated", "not-an-object", "not-utf8", "no-bounds"],
)
def test_unusable_world_json_says_to_rebuild(
    world_copy: Path, damage: Callable[[Path], object], says: str
) -> None:
    """A missing, damaged or incompatible world.json is a WorldFormatError pointing at the fix."""
    damage(world_copy)
    with pytest.raises(WorldFormatError, match=says) as caught:
        World.load(world_copy)
    assert "`roadswarm sim world`" in str(caught.value)


def test_damaged_roads_say_to_rebuild(world_copy: Path) -> None:
    """A world whose roads.geojson is not GeoJSON is a WorldFormatError that says to rebuild."""
    (world_copy / "roads.geojson").write_text("not json")
    with pytest.raises(WorldFormatError, match="rebuild with `roadswarm sim world`"):
        World.load(world_copy)


def test_seed_decides_every_pixel(grid_osm: Path, tmp_path: Path) -> None:
    """Two worlds with the same seed render identical chunks; another seed renders other pixels."""
    first = build_world(grid_osm, tmp_path / "a", seed=SEED)
    twin = build_world(grid_osm, tmp_path / "b", seed=SEED)
    other = build_world(grid_osm, tmp_path / "c", seed=SEED + 1)
    cx, cy = _chunk_of(first, *_one_way_midpoints(first)[0])
    chunk = first.ortho.chunk(cx, cy)
    assert np.array_equal(chunk, twin.ortho.chunk(cx, cy))
    assert not np.array_equal(chunk, other.ortho.chunk(cx, cy))
    assert (first.root / "ortho" / f"{cx}_{cy}.jpg").read_bytes() == (
        twin.root / "ortho" / f"{cx}_{cy}.jpg"
    ).read_bytes()
