"""The pure parts of the coverage and freshness layers: age buckets, cutting lines into bins,
painting order, vector clipping and the tiles a segment touches."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import mapbox_vector_tile
import numpy as np
import pytest
from PIL import Image

from mapbuilder.layers.freshness import (
    NEVER,
    RAMP,
    bucket_of,
    composite,
    legend,
    piece,
    render_freshness_tile,
    runs,
)
from mapbuilder.layers.geometry import global_px, tiles_touching
from mapbuilder.layers.stats import SegmentCoverage
from mapbuilder.layers.vector import BUFFER, EXTENT, clipped_line, encode_coverage_tile
from mapbuilder.tiles.mercator import TILE_PX, lonlat_of_px, world_px

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def segment(
    lonlat: tuple[tuple[float, float], ...],
    last: list[float],
    *,
    length_m: float = 100.0,
    segment_id: str = "s",
) -> SegmentCoverage:
    """A two-way segment whose forward bins were last captured at `last` (NaN: never)."""
    table = np.full((2, len(last)), np.nan)
    table[0] = last
    return SegmentCoverage(
        segment_id=segment_id,
        road_class="primary",
        oneway=False,
        width_m=7.0,
        length_m=length_m,
        lonlat=lonlat,
        last_capture_s=table,
        captures=int(not all(math.isnan(v) for v in last)),
    )


def test_buckets_follow_the_ramp() -> None:
    """Ages fall in the documented buckets; never captured is -1; the future counts as fresh."""
    ages = np.array([-1.0, 0.5, 1.0, 6.9, 29.0, 89.0, 364.0, 400.0, np.nan])
    assert bucket_of(ages).tolist() == [0, 0, 1, 1, 2, 3, 4, 5, -1]
    assert [b["label"] for b in legend()][-1] == NEVER.label
    assert legend()[len(RAMP) - 1]["max_age_days"] is None


def test_runs_and_pieces_cut_the_line_by_length() -> None:
    """Runs group equal bins; a piece spans its share of the line's length."""
    assert runs(np.array([0, 0, 1, 1, 1, -1])) == [(0, 0, 2), (1, 2, 5), (-1, 5, 6)]
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    part = piece(line, 0.25, 0.75)
    assert part.tolist() == [[5.0, 0.0], [10.0, 0.0], [10.0, 5.0]]


def test_fresh_is_painted_over_never_captured() -> None:
    """Where a fresh and a never-captured mask overlap, the fresh colour shows, opaque."""
    fresh = np.zeros((TILE_PX, TILE_PX), np.uint8)
    never = np.zeros_like(fresh)
    fresh[10, 10] = never[10, 10] = never[20, 20] = 255
    rgba = composite({0: fresh, -1: never})
    assert tuple(rgba[10, 10]) == RAMP[0].rgba
    assert tuple(rgba[20, 20]) == NEVER.rgba
    assert rgba[30, 30, 3] == 0


def _tile_at(lon: float, lat: float, zoom: int) -> tuple[int, int, int]:
    x, y = world_px(lon, lat, zoom)
    return zoom, int(x // TILE_PX), int(y // TILE_PX)


def test_freshness_tile_is_deterministic_and_coloured_per_bin() -> None:
    """The same input gives the same bytes; a half-captured segment shows two colours."""
    line = ((24.9400, 60.1700), (24.9418, 60.1700))  # about 100 m east
    seg = segment(line, [NOW.timestamp() - 3600] * 2 + [math.nan] * 3)
    tile = _tile_at(24.9409, 60.17, 17)
    first = render_freshness_tile(tile, [seg], NOW)
    assert first is not None and first == render_freshness_tile(tile, [seg], NOW)
    assert render_freshness_tile((17, 0, 0), [seg], NOW) is None
    image = np.asarray(Image.open(io.BytesIO(first)))
    for lon, rgba in ((24.9402, RAMP[0].rgba), (24.9415, NEVER.rgba)):
        x, y = world_px(lon, 60.17, 17)
        assert tuple(image[int(y) - tile[2] * TILE_PX, int(x) - tile[1] * TILE_PX]) == rgba


def test_vector_line_is_clipped_to_the_buffered_tile() -> None:
    """A line crossing the tile is cut at the buffer; one far away gives nothing."""
    tile = _tile_at(24.94, 60.17, 16)
    x0, y0 = tile[1] * TILE_PX, tile[2] * TILE_PX
    # A line through the tile's middle row, from 1 tile west to 1 tile east.
    lon, lat = lonlat_of_px(
        np.array([x0 - TILE_PX, x0 + 2 * TILE_PX]), np.array([y0 + 128.0, y0 + 128.0]), 16
    )
    crossing = segment(tuple(zip(lon.tolist(), lat.tolist(), strict=True)), [math.nan] * 5)
    clipped = clipped_line(crossing, tile)
    assert clipped is not None
    xs = [p[0] for p in clipped.coords]
    assert min(xs) == -BUFFER and max(xs) == EXTENT + BUFFER
    far = segment(((0.0, 0.0), (0.001, 0.0)), [math.nan] * 5)
    assert clipped_line(far, tile) is None
    data = encode_coverage_tile(tile, [crossing, far], [1.0, 2.0])
    assert data is not None
    features = mapbox_vector_tile.decode(data)["coverage"]["features"]
    assert len(features) == 1 and features[0]["properties"]["coverage"] == 0


def test_tiles_touching_include_the_margin() -> None:
    """A point near a tile edge touches the neighbour only within the margin."""
    x, y = 256.0 * 100 + 2, 256.0 * 100 + 128  # 2 px inside tile (100, 100) at zoom 10
    lon, lat = lonlat_of_px(np.array([x]), np.array([y]), 10)
    point = ((float(lon[0]), float(lat[0])), (float(lon[0]), float(lat[0])))
    assert tiles_touching(point, 10, margin_px=0) == [(10, 100, 100)]
    assert tiles_touching(point, 10, margin_px=4) == [(10, 99, 100), (10, 100, 100)]
    assert global_px(point, 10)[0] == pytest.approx([x, y])
