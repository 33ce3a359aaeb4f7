"""Coverage statistics from the catalog (SQLite and PostgreSQL), and the coverage and freshness
tiles built from them through the tile store."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import pytest
from PIL import Image

from ingest.catalog import FrameState
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.layers.build import rebuild_layers
from mapbuilder.layers.freshness import NEVER, RAMP
from mapbuilder.layers.geometry import global_px
from mapbuilder.layers.marking import segments_aging
from mapbuilder.layers.stats import SegmentCoverage, load_coverage
from mapbuilder.layers.vector import LAYER_NAME, feature_id
from mapbuilder.tiles.mercator import TILE_PX
from mapbuilder.tiles.store import TileStore
from tests.rewards_helpers import (
    EPOCH,
    SEGMENTS,
    Capture,
    _frame,
    add_matches,
    drive,
    seed_catalog,
)

START = EPOCH.start + timedelta(days=1)
NOW = START + timedelta(hours=6)


def length_weights(segments: Sequence[SegmentCoverage]) -> list[float]:
    """A stand-in reward weight: the segment's length."""
    return [s.length_m for s in segments]


def captures() -> list[Capture]:
    """seg-a driven forward end to end by device 1 and backward over its first 40 m by device 2;
    one frame at the far end of seg-b; device 3's frames on seg-c were quarantined."""
    return [
        *drive(1, "seg-a", START, length_m=100),
        *[
            Capture(2, "seg-a", 4.0 * i, START + timedelta(hours=1, seconds=i), "backward")
            for i in range(10)
        ],
        Capture(1, "seg-b", 44.9, START + timedelta(minutes=5)),
        *drive(3, "seg-c", START, length_m=60, state=FrameState.QUARANTINED),
    ]


def by_id(catalog: Catalog) -> dict[str, SegmentCoverage]:
    """The catalog's coverage, by segment id."""
    return {s.segment_id: s for s in load_coverage(catalog)}


def test_coverage_statistics(catalog: Catalog) -> None:
    """Bins captured per direction, passes, last capture; quarantined frames do not count."""
    seed_catalog(catalog, captures())
    found = by_id(catalog)
    assert sorted(found) == [s[0] for s in SEGMENTS]
    a, b, c = found["seg-a"], found["seg-b"], found["seg-c"]
    assert a.bins == 5 and a.coverage_in("forward") == 1.0
    assert a.coverage_in("backward") == pytest.approx(0.4)
    assert a.coverage == pytest.approx(0.7)  # two-way: mean of both directions
    assert a.captures == 2
    assert a.last_capture == START + timedelta(hours=1, seconds=9)
    # 45 m: bins of 20, 20 and 5 m; the frame at 44.9 m covers only the short last one.
    assert b.bins == 3 and b.coverage_in("forward") == pytest.approx(5 / 45)
    assert (c.captures, c.coverage, c.last_capture) == (0, 0.0, None)


def test_coverage_in_a_box(catalog: Catalog) -> None:
    """A box around one segment loads only that segment."""
    seed_catalog(catalog, captures())
    box = (24.9399, 60.1699, 24.9420, 60.1701)  # seg-a lies at 60.17 from 24.94
    assert [s.segment_id for s in load_coverage(catalog, box)] == ["seg-a"]


def _tile_store(tmp_path: Path) -> TileStore:
    return TileStore(LocalObjectStore(tmp_path / "store"))


def _decoded(data: bytes) -> dict[str, dict[str, Any]]:
    layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    assert list(layers) == [LAYER_NAME] and layers[LAYER_NAME]["extent"] == 4096
    return {f["properties"]["segment_id"]: f for f in layers[LAYER_NAME]["features"]}


def _tile_of(lon: float, lat: float, zoom: int) -> tuple[int, int, int]:
    x, y = global_px(((lon, lat),), zoom)[0]
    return zoom, int(x // TILE_PX), int(y // TILE_PX)


def _seeded_and_built(catalog: Catalog, tmp_path: Path, layer: str) -> TileStore:
    """The test captures in the catalog and one layer built from them into a fresh store."""
    seed_catalog(catalog, captures())
    tiles = _tile_store(tmp_path)
    rebuild_layers(
        catalog, tiles, segment_ids=None, weights=length_weights, now=NOW, layers=[layer]
    )
    return tiles


def test_vector_tiles_decode_with_properties_and_geometry(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """Every z16 coverage tile decodes; seg-a lands on the right pixels with its statistics."""
    tiles = _seeded_and_built(sqlite_catalog, tmp_path, "coverage")
    tile = _tile_of(24.9405, 60.17, 16)
    stored = tiles.get("coverage", tile)
    assert stored is not None
    feature = _decoded(stored.data)["seg-a"]
    props = feature["properties"]
    assert props["coverage"] == pytest.approx(0.7)
    assert props["coverage_forward"] == 1 and props["coverage_backward"] == pytest.approx(0.4)
    assert props["captures"] == 2 and props["reward_weight"] == 100
    assert props["last_capture"] == "2026-11-24T01:00:09Z"
    assert props["last_capture_unix"] == int((START + timedelta(hours=1, seconds=9)).timestamp())
    assert feature["id"] == feature_id("seg-a")
    # The line's first point, in tile units, is where Web Mercator puts (24.94, 60.17).
    size = 4096 * 2**16
    x = (24.94 + 180) / 360 * size - tile[1] * 4096
    y = (
        1 - math.log(math.tan(math.radians(60.17)) + 1 / math.cos(math.radians(60.17))) / math.pi
    ) / 2 * size - tile[2] * 4096
    first = feature["geometry"]["coordinates"][0]
    assert abs(first[0] - x) <= 0.5 and abs(first[1] - y) <= 0.5
    c_tile = tiles.get("coverage", _tile_of(24.9405, 60.172, 16))
    assert c_tile is not None
    assert "last_capture" not in _decoded(c_tile.data)["seg-c"]["properties"]


def _pixel(data: bytes, lon: float, lat: float, tile: tuple[int, int, int]) -> tuple[int, ...]:
    image = np.asarray(Image.open(io.BytesIO(data)))
    x, y = global_px(((lon, lat),), tile[0])[0]
    return tuple(int(v) for v in image[int(y - tile[2] * TILE_PX), int(x - tile[1] * TILE_PX)])


def test_freshness_tiles_colour_by_age(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """Fresh bins are green, a never-captured road grey, off-road transparent."""
    tiles = _seeded_and_built(sqlite_catalog, tmp_path, "freshness")
    tile = _tile_of(24.9405, 60.17, 18)
    stored = tiles.get("freshness", tile)
    assert stored is not None
    assert _pixel(stored.data, 24.9405, 60.17, tile) == RAMP[0].rgba
    c_tile = _tile_of(24.9405, 60.172, 18)
    c_stored = tiles.get("freshness", c_tile)
    assert c_stored is not None
    assert _pixel(c_stored.data, 24.9405, 60.172, c_tile) == NEVER.rgba
    assert _pixel(stored.data, 24.9405, 60.1703, tile)[3] == 0


def test_rebuild_is_idempotent_and_incremental(catalog: Catalog, tmp_path: Path) -> None:
    """Same catalog: nothing rewritten; a new capture rewrites only the tiles its segment touches;
    a week later the freshness colours age."""
    ids = seed_catalog(catalog, captures())
    tiles = _tile_store(tmp_path)
    first = rebuild_layers(catalog, tiles, segment_ids=None, weights=length_weights, now=NOW)
    assert first.written["coverage"] > 0 and first.written["freshness"] > 0
    again = rebuild_layers(catalog, tiles, segment_ids=None, weights=length_weights, now=NOW)
    assert again.written == {"coverage": 0, "freshness": 0}
    assert again.unchanged == first.written
    tile = _tile_of(24.9405, 60.172, 18)
    before = tiles.head("freshness", tile)
    add_matches_for_c(catalog, ids[1])
    step = rebuild_layers(catalog, tiles, segment_ids={"seg-c"}, weights=length_weights, now=NOW)
    assert 0 < step.written["freshness"] < first.written["freshness"]
    after = tiles.get("freshness", tile)
    assert after is not None and after.etag != before
    assert _pixel(after.data, 24.9405, 60.172, tile) == RAMP[0].rgba
    later = NOW + timedelta(days=8)
    rebuild_layers(
        catalog,
        tiles,
        segment_ids={"seg-c"},
        weights=length_weights,
        now=later,
        layers=["freshness"],
    )
    aged = tiles.get("freshness", tile)
    assert aged is not None and _pixel(aged.data, 24.9405, 60.172, tile) == RAMP[2].rgba


def add_matches_for_c(catalog: Catalog, device_id: str) -> None:
    """Device 1 drives seg-c an hour before NOW (its frames accepted and matched)."""
    new = drive(1, "seg-c", NOW - timedelta(hours=1), length_m=60, tag="late")
    with catalog.session() as session:
        session.add_all(_frame(capture, device_id, NOW) for capture in new)
    add_matches(catalog, new)


def test_segments_whose_captures_aged_are_found(catalog: Catalog) -> None:
    """A capture crossing the 7-day bound within the window names its segment; others do not."""
    seed_catalog(catalog, captures())
    # seg-a's forward captures are START to START + 96 s; seg-b's is START + 5 min.
    crossing = START + timedelta(days=7, minutes=6)
    assert segments_aging(catalog, now=crossing, window=timedelta(minutes=3)) == {"seg-b"}
    assert segments_aging(catalog, now=crossing, window=timedelta(hours=2)) == {"seg-a", "seg-b"}
    assert (
        segments_aging(catalog, now=START + timedelta(days=3), window=timedelta(hours=1)) == set()
    )
