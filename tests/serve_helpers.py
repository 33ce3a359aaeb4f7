"""Builders for consumer-API tests: frames and their JPEGs, tiles of every layer, a served API."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import mapbox_vector_tile
from PIL import Image
from starlette.types import ASGIApp

from ingest.catalog import Device, Frame, FrameState
from ingest.db import Catalog
from ingest.protocol import public_key_hex
from ingest.storage import ObjectStore
from mapbuilder.catalog import FrameMatch
from mapbuilder.serve.app import serving_app
from mapbuilder.serve.keys import create_key
from mapbuilder.serve.presign import ImagePresigner
from mapbuilder.serve.services import ServeServices, tile_cache
from mapbuilder.serve.settings import ServeSettings
from mapbuilder.serve.signing import UrlSigner
from mapbuilder.tiles.mercator import TILE_PX, Tile, world_px
from mapbuilder.tiles.store import TileStore
from roadswarm.api_server import ApiServer
from tests.ingest_helpers import frame_id, make_jpeg
from tests.rewards_helpers import fixed_device

URL_SECRET = "serve-test-secret-0123456789"
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ORIGIN = (24.94, 60.17)  # lon, lat of the first frame; frames go north 4 m apart
METRES_PER_DEGREE = 111_320.0
SEGMENT = "seg-north"


@dataclass(frozen=True)
class SeededFrame:
    """A frame written to the catalog and the store."""

    frame_id: str
    lon: float
    lat: float
    heading_deg: float
    captured_at: datetime
    jpeg: bytes


def seed_frames(
    catalog: Catalog, store: ObjectStore, count: int, *, headings: tuple[float, ...] = (0.0,)
) -> list[SeededFrame]:
    """`count` accepted frames driving north from ORIGIN, one a minute, matched to SEGMENT."""
    device = fixed_device(7)
    frames = []
    with catalog.session() as session:
        session.add(
            Device(
                device_id=device.device_id,
                public_key=public_key_hex(device.key.public_key()),
                registered_at=START,
                revoked_at=None,
                last_counter=1,
            )
        )
        for index in range(count):
            jpeg = make_jpeg(index, 320, 240)
            seeded = SeededFrame(
                frame_id(jpeg),
                ORIGIN[0],
                ORIGIN[1] + index * 4.0 / METRES_PER_DEGREE,
                headings[index % len(headings)],
                START + timedelta(minutes=index),
                jpeg,
            )
            key = f"frames/{device.device_id}/{seeded.frame_id}.jpg"
            store.put_bytes(key, jpeg, content_type="image/jpeg")
            session.add(_frame_row(seeded, device.device_id, key, index))
            session.flush()
            session.add(
                FrameMatch(
                    frame_id=seeded.frame_id,
                    segment_id=SEGMENT,
                    direction="forward",
                    offset_m=index * 4.0,
                    distance_m=0.5,
                    matched_at=START,
                )
            )
            frames.append(seeded)
    return frames


def _frame_row(seeded: SeededFrame, device_id: str, key: str, index: int) -> Frame:
    return Frame(
        frame_id=seeded.frame_id,
        device_id=device_id,
        batch_counter=1,
        object_key=key,
        size_bytes=len(seeded.jpeg),
        sequence_id="seq-1",
        sequence_index=index,
        capture_time=seeded.captured_at,
        lat=seeded.lat,
        lon=seeded.lon,
        altitude_m=None,
        heading_deg=seeded.heading_deg,
        speed_mps=10.0,
        hdop=1.0,
        model_versions={},
        state=FrameState.ACCEPTED,
        state_since=START,
        attempts=0,
        received_at=START,
    )


def tile_at(lon: float, lat: float, zoom: int) -> Tile:
    """The tile holding a position."""
    x, y = world_px(lon, lat, zoom)
    return zoom, int(x // TILE_PX), int(y // TILE_PX)


def raster_tile(colour: tuple[int, int, int], fmt: str) -> bytes:
    """A 256 px tile of one colour with a darker stripe, as WebP (lossless) or PNG."""
    image = Image.new("RGB", (TILE_PX, TILE_PX), colour)
    image.paste(tuple(c // 2 for c in colour), (100, 0, 156, TILE_PX))
    buffer = io.BytesIO()
    image.save(buffer, fmt, lossless=True) if fmt == "WEBP" else image.save(buffer, fmt)
    return buffer.getvalue()


def coverage_tile() -> bytes:
    """A coverage MVT: one road segment crossing the tile diagonally, half covered."""
    feature = {
        "geometry": "LINESTRING (0 0, 4096 4096)",
        "properties": {"segment_id": SEGMENT, "coverage": 0.5, "captures": 3},
        "id": 1,
    }
    encoded: bytes = mapbox_vector_tile.encode(
        [{"name": "coverage", "features": [feature]}], default_options={"y_coord_down": True}
    )
    return encoded


def seed_tiles(store: ObjectStore) -> dict[str, Tile]:
    """One tile of each layer at ORIGIN (imagery z17, freshness z14, coverage z16) plus the
    lowest zoom of each, so TileJSON bounds are known; the z17/z14/z16 tiles by layer."""
    tiles = TileStore(store)
    written = {
        "imagery": tile_at(*ORIGIN, 17),
        "freshness": tile_at(*ORIGIN, 14),
        "coverage": tile_at(*ORIGIN, 16),
    }
    tiles.put("imagery", written["imagery"], raster_tile((90, 90, 96), "WEBP"))
    tiles.put("imagery", tile_at(*ORIGIN, 14), raster_tile((90, 90, 96), "WEBP"))
    tiles.put("freshness", written["freshness"], raster_tile((30, 160, 80), "PNG"))
    tiles.put("freshness", tile_at(*ORIGIN, 10), raster_tile((30, 160, 80), "PNG"))
    tiles.put("coverage", written["coverage"], coverage_tile())
    tiles.put("coverage", tile_at(*ORIGIN, 10), coverage_tile())
    return written


@dataclass
class MapApi:
    """A served consumer API, an HTTP client and one key for it."""

    services: ServeServices
    url: str
    http: httpx.Client
    key: str

    def new_key(self, name: str, *, rate_per_s: float = 100.0, burst: int = 1000) -> str:
        """A further key's full text."""
        return create_key(self.services.catalog, name, rate_per_s=rate_per_s, burst=burst)[1]

    def keyed(self, key: str | None = None) -> dict[str, str]:
        """Headers carrying a key (this harness's by default)."""
        return {"X-API-Key": key or self.key}


def map_services(
    catalog: Catalog,
    store: ObjectStore,
    *,
    presigner: ImagePresigner | None = None,
    **settings: object,
) -> ServeServices:
    """Services over `catalog` and `store` with test settings (and presigned S3 image URLs)."""
    chosen = ServeSettings(url_secret=URL_SECRET, **settings)  # type: ignore[arg-type]
    signer = UrlSigner(URL_SECRET, chosen.image_url_ttl_s)
    return ServeServices(catalog, store, chosen, signer, tile_cache(chosen), presigner)


@contextmanager
def served_map_api(
    catalog: Catalog,
    store: ObjectStore,
    *,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    presigner: ImagePresigner | None = None,
    **settings: object,
) -> Iterator[MapApi]:
    """The consumer API on a free loopback port (inside `wrap`, if given), with a generous key."""
    services = map_services(catalog, store, presigner=presigner, **settings)
    key = create_key(catalog, "test", rate_per_s=100.0, burst=1000)[1]
    app = serving_app(services)
    with (
        ApiServer(wrap(app) if wrap else app) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        yield MapApi(services, server.url, http, key)
