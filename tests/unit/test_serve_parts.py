"""Plain parts of the consumer API: headings, cursors, ETags, signing, polygons, over-zoom,
cache, token blocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import mapbox_vector_tile
import pytest

from mapbuilder.serve.area import query_polygon
from mapbuilder.serve.errors import BadQueryError, SignedUrlError, TileNotFoundError
from mapbuilder.serve.imagery import FrameHit, decode_cursor, encode_cursor, heading_matches
from mapbuilder.serve.keys import ApiKey
from mapbuilder.serve.leases import block_size
from mapbuilder.serve.overzoom import overzoom, parent_at
from mapbuilder.serve.signing import UrlSigner
from mapbuilder.serve.tile_cache import CachedTile, TileCache
from mapbuilder.serve.tiles_api import etag_for, etag_matches, source_tile
from mapbuilder.tiles.layers import layer

FRAME = "ab" * 32


@pytest.mark.parametrize(
    ("heading", "target", "tolerance", "expected"),
    [
        (350, 0, 15, True),
        (10, 0, 15, True),
        (20, 0, 15, False),
        (0, 350, 10, True),
        (180, 0, 179, False),
        (359.5, 0.5, 1, True),
    ],
)
def test_heading_matches_wraps_at_north(
    heading: float, target: float, tolerance: float, expected: bool
) -> None:
    """Angular distance wraps at 0/360 in both directions."""
    assert heading_matches(heading, target, tolerance) is expected


def test_cursor_round_trips_and_rejects_forgeries() -> None:
    """A cursor resumes after its frame; naive times and junk are refused with advice."""
    hit = FrameHit(
        FRAME, 24.9, 60.1, 0.0, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "s", 0, None, "k"
    )
    assert decode_cursor(encode_cursor(hit)) == (hit.captured_at, FRAME)
    for bad in ("%%%", "bm8", "MjAyNi0wMS0wMlQwMzowNDowNXxhYg"):  # junk, "no", a naive time
        with pytest.raises(BadQueryError, match="next_cursor"):
            decode_cursor(bad)


def test_etag_matching_follows_rfc_9110() -> None:
    """Lists, weak tags and '*' match; another tag does not."""
    assert etag_matches('"x", W/"abc"', "abc")
    assert etag_matches("*", "abc")
    assert not etag_matches('"abd"', "abc")
    assert not etag_matches(None, "abc")


def test_over_zoom_picks_the_max_zoom_parent_for_vector_layers_only() -> None:
    """Coverage above z16 comes from its z16 parent with its own ETag; imagery above z21 is 404."""
    assert source_tile(layer("coverage"), (18, 1001, 2003)) == (16, 250, 500)
    assert parent_at((18, 1001, 2003), 16) == (16, 250, 500)
    assert etag_for("e", (16, 250, 500), (18, 1001, 2003)) != etag_for(
        "e", (16, 250, 500), (18, 1000, 2003)
    )
    with pytest.raises(TileNotFoundError, match="over-zoom"):
        source_tile(layer("imagery"), (22, 0, 0))


def test_over_zoom_rescales_and_clips_geometry() -> None:
    """A point in the parent's north-west quarter lands scaled in the z+1 north-west child only."""
    parent = mapbox_vector_tile.encode(
        [
            {
                "name": "coverage",
                "features": [{"geometry": "POINT (1000 1000)", "properties": {"c": 1}}],
            }
        ],
        default_options={"y_coord_down": True},
    )
    child = mapbox_vector_tile.decode(
        overzoom(parent, (16, 0, 0), (17, 0, 0)), default_options={"y_coord_down": True}
    )
    assert child["coverage"]["features"][0]["geometry"]["coordinates"] == [2000, 2000]
    other = mapbox_vector_tile.decode(
        overzoom(parent, (16, 0, 0), (17, 1, 1)), default_options={"y_coord_down": True}
    )
    assert other["coverage"]["features"] == []


def test_signed_urls_expire_and_bind_the_frame() -> None:
    """A URL checks until it expires; another frame id, a short secret or a late check fail."""
    signer = UrlSigner("a-long-enough-secret", ttl_s=60)
    signed = signer.sign(FRAME, now_s=1000)
    sig = signed.path.rsplit("sig=", 1)[1]
    signer.check(FRAME, signed.expires_s, sig, now_s=1059)
    with pytest.raises(SignedUrlError, match="expired"):
        signer.check(FRAME, signed.expires_s, sig, now_s=1061)
    with pytest.raises(SignedUrlError, match="signature"):
        signer.check("cd" * 32, signed.expires_s, sig, now_s=1000)
    with pytest.raises(SignedUrlError, match="signature"):
        signer.check(FRAME, signed.expires_s, "é" * 64, now_s=1000)
    with pytest.raises(SignedUrlError, match="frame ids"):
        signer.check("../../etc/passwd", signed.expires_s, sig, now_s=1000)
    with pytest.raises(SignedUrlError, match="16 characters"):
        UrlSigner("short", ttl_s=60)


def test_query_polygon_checks_area_and_validity() -> None:
    """A small valid polygon passes; one of about 111 x 55 km is over the area limit."""
    ring = [[24.9, 60.1], [24.91, 60.1], [24.91, 60.11], [24.9, 60.11], [24.9, 60.1]]
    assert query_polygon({"type": "Polygon", "coordinates": [ring]}, max_area_km2=25).area > 0
    big = [[24.0, 60.0], [25.0, 60.0], [25.0, 61.0], [24.0, 61.0], [24.0, 60.0]]
    with pytest.raises(BadQueryError, match="km²"):
        query_polygon({"type": "Polygon", "coordinates": [big]}, max_area_km2=25)
    with pytest.raises(BadQueryError, match="Polygon or MultiPolygon"):
        query_polygon({"type": "Point", "coordinates": [24.9, 60.1]}, max_area_km2=25)


def test_tile_cache_expires_and_stays_within_its_size() -> None:
    """Entries vanish after the time to live; the least recently used go first when full."""
    cache = TileCache(ttl_s=0.2, max_bytes=10)
    cache.put("imagery", (1, 0, 0), b"12345", "a")
    cache.put("imagery", (1, 0, 1), b"12345", "b")
    assert cache.get("imagery", (1, 0, 0)) is not None  # now the most recently used
    cache.put("imagery", (1, 1, 1), b"123", "c")
    assert cache.get("imagery", (1, 0, 1)) is None
    assert cache.get("imagery", (1, 0, 0)) is not None
    cache.put("imagery", (2, 0, 0), b"x" * 11, "too big")
    assert cache.get("imagery", (2, 0, 0)) is None
    time.sleep(0.25)
    assert cache.get("imagery", (1, 0, 0)) is None


def test_tile_cache_offers_for_checking_only_entries_in_use() -> None:
    """Entries asked for since they were read are due at the given age; a renewed entry is
    trusted from its check; an entry replaced meanwhile is not renewed."""
    clock = [10.0]
    cache = TileCache(ttl_s=4.0, max_bytes=100, clock=lambda: clock[0])
    cache.put("imagery", (1, 0, 0), b"hot", "a")
    cache.put("imagery", (1, 0, 1), b"cold", "b")
    clock[0] = 11.0
    assert cache.get("imagery", (1, 0, 0)) is not None
    clock[0] = 12.0
    [(layer_name, tile, entry)] = cache.due(age_s=2.0)
    assert (layer_name, tile, entry.stored_etag) == ("imagery", (1, 0, 0), "a")
    cache.renew(layer_name, tile, entry, checked_at=12.0)
    clock[0] = 15.0  # past the first read's time to live, not the check's
    assert cache.get("imagery", (1, 0, 0)) is not None
    assert cache.get("imagery", (1, 0, 1)) is None
    stale = cache.due(age_s=2.0)[0][2]
    cache.put("imagery", (1, 0, 0), b"new", "c")
    cache.renew("imagery", (1, 0, 0), stale, checked_at=15.0)
    assert cache.get("imagery", (1, 0, 0)) == CachedTile(b"new", "c", 15.0, "c")


@pytest.mark.parametrize(
    ("rate_per_s", "burst", "block"),
    [(0.01, 6, 1), (50.0, 200, 10), (1000.0, 400, 50), (1e9, 10**9, 125_000_000)],
)
def test_token_blocks_are_a_fraction_of_a_second_and_of_the_burst(
    rate_per_s: float, burst: int, block: int
) -> None:
    """A lease takes 0.2 s of the rate, at most an eighth of the burst, and at least one token."""
    key = ApiKey("0" * 12, "k", datetime(2026, 1, 1, tzinfo=UTC), None, rate_per_s, burst)
    assert block_size(key) == block
