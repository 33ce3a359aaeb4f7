"""The consumer API's tiles: ETag and 304, caching and CORS headers, coverage, over-zoom, errors."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest
from starlette.types import Message, Receive, Scope, Send

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.fastpath import CachedTileFastPath
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.store import TileStore, tile_key
from tests.serve_helpers import MapApi, raster_tile, seed_tiles, served_map_api


@pytest.fixture
def map_api(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[tuple[MapApi, dict[str, Tile]]]:
    """The API over a SQLite catalog and a store holding one tile of each layer."""
    store = LocalObjectStore(tmp_path / "store")
    tiles = seed_tiles(store)
    with served_map_api(sqlite_catalog, store, public_layers=("freshness",)) as api:
        yield api, tiles


def _path(layer: str, tile: Tile, ext: str) -> str:
    z, x, y = tile
    return f"/tiles/{layer}/{z}/{x}/{y}.{ext}"


def test_tile_has_strong_etag_cache_control_and_cors(
    map_api: tuple[MapApi, dict[str, Tile]],
) -> None:
    """A keyed tile comes with its sha256 as ETag, private caching and CORS exposing the ETag."""
    api, tiles = map_api
    headers = {**api.keyed(), "Origin": "https://maps.example"}
    answer = api.http.get(_path("imagery", tiles["imagery"], "webp"), headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/webp"
    assert answer.content[:4] == b"RIFF"
    stored = api.services.tiles.get("imagery", tiles["imagery"])
    assert stored is not None
    assert answer.headers["etag"] == f'"{stored.etag}"'
    assert answer.headers["cache-control"].startswith("private, max-age=")
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


def test_if_none_match_gives_304_and_is_not_metered(
    map_api: tuple[MapApi, dict[str, Tile]],
) -> None:
    """Revalidating with the ETag answers 304 with no body, and only the 200 costs a credit."""
    api, tiles = map_api
    path = _path("imagery", tiles["imagery"], "webp")
    first = api.http.get(path, headers=api.keyed())
    again = api.http.get(path, headers={**api.keyed(), "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    usage = api.http.get("/v1/account/usage", headers=api.keyed()).json()
    assert usage["days"][0]["tiles"] == 1
    assert usage["total_credits"] == 1


def test_public_layer_needs_no_key_and_keyed_layer_does(
    map_api: tuple[MapApi, dict[str, Tile]],
) -> None:
    """A public layer is served to anyone (public caching); the others answer 401 with advice."""
    api, tiles = map_api
    public = api.http.get(_path("freshness", tiles["freshness"], "png"))
    assert public.status_code == 200
    assert public.headers["cache-control"].startswith("public")
    refused = api.http.get(_path("imagery", tiles["imagery"], "webp"))
    assert refused.status_code == 401
    assert "X-API-Key" in refused.json()["message"]


def test_key_in_query_parameter_is_accepted(map_api: tuple[MapApi, dict[str, Tile]]) -> None:
    """Map clients that cannot set headers pass the key as ?key=."""
    api, tiles = map_api
    answer = api.http.get(_path("imagery", tiles["imagery"], "webp"), params={"key": api.key})
    assert answer.status_code == 200


def test_outside_coverage_is_404_json(map_api: tuple[MapApi, dict[str, Tile]]) -> None:
    """A tile nobody built answers 404 with a message pointing at the layer's bounds."""
    api, _ = map_api
    answer = api.http.get("/tiles/imagery/17/0/0.webp", headers=api.keyed())
    assert answer.status_code == 404
    assert "outside the layer's coverage" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/tiles/roads/17/1/1.webp", 404, "use one of coverage, freshness, imagery"),
        ("/tiles/imagery/17/1/1.png", 400, "served as .webp"),
        ("/tiles/imagery/12/1/1.webp", 404, "zooms 14 to 21"),
        ("/tiles/imagery/22/1/1.webp", 404, "clients over-zoom raster tiles"),
        ("/tiles/imagery/17/999999/1.webp", 400, "x and y run from 0 to"),
        ("/tiles/imagery/17/a/1.webp", 422, "path.x: Input should be a valid integer"),
        ("/tiles/..%2F..%2Fetc/17/1/1.webp", 404, "no such endpoint"),
        ("/tiles/..%2Fetc/17/1/1.webp", 404, "no such endpoint"),
        ("/tiles/%2E%2E/17/1/1.webp", 404, "unknown tile layer"),
        ("/tiles/imagery/17/1/..%2F..%2F1.webp", 404, "no such endpoint"),
        ("/tiles/imagery/17/1/1x.webp", 422, "path.y"),
    ],
)
def test_bad_tile_addresses_get_actionable_json(
    map_api: tuple[MapApi, dict[str, Tile]], path: str, status: int, words: str
) -> None:
    """Unknown layer, wrong extension, zoom or column out of range, traversal: a JSON message."""
    api, _ = map_api
    answer = api.http.get(path, headers=api.keyed())
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"error", "message"}
    assert words in body["message"]


def test_vector_layer_is_over_zoomed_from_its_max_zoom_parent(
    map_api: tuple[MapApi, dict[str, Tile]],
) -> None:
    """Above z16 the coverage tile is cut from its parent: the line is rescaled into the child."""
    api, tiles = map_api
    z, x, y = tiles["coverage"]
    child = (z + 1, 2 * x + 1, 2 * y + 1)  # the parent's south-east quarter
    answer = api.http.get(_path("coverage", child, "pbf"), headers=api.keyed())
    assert answer.status_code == 200
    decoded = mapbox_vector_tile.decode(answer.content, default_options={"y_coord_down": True})
    feature = decoded["coverage"]["features"][0]
    assert feature["properties"]["segment_id"] == "seg-north"
    # The parent's diagonal (0,0)-(4096,4096) crosses the child from its buffer to its far corner.
    assert feature["geometry"]["coordinates"] == [[-64, -64], [4096, 4096]]
    parent_etag = api.http.get(_path("coverage", tiles["coverage"], "pbf"), headers=api.keyed())
    assert answer.headers["etag"] != parent_etag.headers["etag"]


def test_corrupt_tile_is_never_served(map_api: tuple[MapApi, dict[str, Tile]]) -> None:
    """Bytes damaged at rest answer 503 with Retry-After, never the tile, and mark it dirty."""
    api, tiles = map_api
    store = api.services.store
    assert isinstance(store, LocalObjectStore)
    path = store.root / tile_key("coverage", tiles["coverage"], "pbf")
    # Flip a byte in place and keep the file's size and mtime, as bit rot does.
    before = path.stat()
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    with path.open("r+b") as file:
        file.write(damaged)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    answer = api.http.get(_path("coverage", tiles["coverage"], "pbf"), headers=api.keyed())
    assert answer.status_code == 503
    assert answer.headers["retry-after"].isdigit()
    assert "corrupt" in answer.json()["message"]
    with api.services.catalog.session() as session:
        row = session.get(TileRow, ("coverage", *tiles["coverage"]))
        assert row is not None and row.dirty_since is not None  # the next build rewrites it


def test_tilejson_describes_each_layer(map_api: tuple[MapApi, dict[str, Tile]]) -> None:
    """TileJSON 3.0 with the tile URL (carrying a ?key= that came that way), zooms and bounds."""
    api, _ = map_api
    doc = api.http.get("/tiles/coverage/tilejson.json", params={"key": api.key}).json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == [f"{api.url}/tiles/coverage/{{z}}/{{x}}/{{y}}.pbf?key={api.key}"]
    assert (doc["minzoom"], doc["maxzoom"]) == (10, 16)
    west, south, east, north = doc["bounds"]
    assert west < 24.94 < east and south < 60.17 < north
    assert doc["vector_layers"][0]["id"] == "coverage"
    layers = api.http.get("/v1/layers").json()["layers"]
    assert {layer["name"]: layer["public"] for layer in layers}["freshness"] is True


def test_cached_public_tile_answers_like_the_route(map_api: tuple[MapApi, dict[str, Tile]]) -> None:
    """The second request (from the in-process cache, before FastAPI) has the same body and headers."""
    api, tiles = map_api
    path = _path("freshness", tiles["freshness"], "png")
    origin = {"Origin": "https://maps.example"}
    first, second = (api.http.get(path, headers=origin) for _ in range(2))
    assert second.content == first.content
    names = ["etag", "cache-control", "vary", "content-type", "content-length"]
    names += ["access-control-allow-origin", "access-control-expose-headers"]
    assert {n: second.headers[n] for n in names} == {n: first.headers[n] for n in names}
    again = api.http.get(path, headers={"If-None-Match": f"W/{first.headers['etag']}"})
    assert again.status_code == 304


def test_rebuilt_tile_is_served_once_the_cache_entry_expires(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A tile rewritten by a build replaces the cached one after the cache's time to live."""
    store = LocalObjectStore(tmp_path / "store")
    tiles = seed_tiles(store)
    path = _path("freshness", tiles["freshness"], "png")
    with served_map_api(
        sqlite_catalog, store, public_layers=("freshness",), tile_cache_s=0.3
    ) as api:
        before = api.http.get(path).headers["etag"]
        etag = TileStore(store).put(
            "freshness", tiles["freshness"], raster_tile((200, 40, 40), "PNG")
        )
        time.sleep(0.5)
        assert api.http.get(path).headers["etag"] == f'"{etag}"' != before


def _fast_path(api: MapApi, path: str, query: str = "", **headers: str) -> list[Message] | None:
    """What the fast path sends for a GET, or None when it hands the request to the app."""
    sent: list[Message] = []
    handed: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handed.append(scope)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [
            (name.replace("_", "-").lower().encode(), v.encode()) for name, v in headers.items()
        ],
    }
    asyncio.run(CachedTileFastPath(app, api.services)(scope, receive, send))
    return None if handed else sent


def test_cached_keyed_tile_is_answered_before_fastapi_and_metered(
    map_api: tuple[MapApi, dict[str, Tile]],
) -> None:
    """With the key and a token in this process's memory, a cached keyed tile is answered before
    FastAPI with the route's headers, and metered; without a token there, the route answers."""
    api, tiles = map_api
    path = _path("imagery", tiles["imagery"], "webp")
    first = api.http.get(path, headers=api.keyed())  # the route: reads the key, leases a block
    fast = _fast_path(api, path, X_API_Key=api.key)
    assert fast is not None
    start, body = fast
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    names = ["etag", "cache-control", "vary", "content-type", "content-length"]
    assert start["status"] == 200 and body["body"] == first.content
    assert {n: headers[n] for n in names} == {n: first.headers[n] for n in names}
    assert _fast_path(api, path, f"key={api.key}") is not None
    assert _fast_path(api, path, f"key={api.key}&other=1") is None
    assert _fast_path(api, path, X_API_Key="rs_000000000000_" + "x" * 40) is None
    key = api.services.keys.cached(api.key)
    assert key is not None
    while api.services.leases.spend_local(key):
        pass
    assert _fast_path(api, path, X_API_Key=api.key) is None
    usage = api.http.get("/v1/account/usage", headers=api.keyed()).json()
    assert usage["days"][0]["tiles"] == 3  # the route's, and the two fast answers


class CountingStore(LocalObjectStore):
    """A folder store that counts the objects read in full."""

    reads = 0

    def get_bytes(self, key: str) -> bytes:
        """Count, then read."""
        self.reads += 1
        return super().get_bytes(key)


def test_hot_tile_is_checked_in_the_background_not_read_again(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A tile asked for all the time stays cached past its TTL (the background check finds it
    unchanged), so its bytes are read once."""
    store = CountingStore(tmp_path / "store")
    tiles = seed_tiles(store)
    path = _path("freshness", tiles["freshness"], "png")
    with served_map_api(
        sqlite_catalog, store, public_layers=("freshness",), tile_cache_s=0.4
    ) as api:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert api.http.get(path).status_code == 200
            time.sleep(0.02)
    assert store.reads == 1
