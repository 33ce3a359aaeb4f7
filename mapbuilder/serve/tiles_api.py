"""Tile routes: `/tiles/{layer}/{z}/{x}/{y}.{ext}` and a TileJSON 3.0 document per layer."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from ingest.errors import IngestError
from mapbuilder.errors import CorruptTileError
from mapbuilder.serve.auth import (
    KEY_QUERY,
    KEYED,
    admit_cached,
    presented_key,
    require_key,
    services_of,
)
from mapbuilder.serve.errors import BadTileRequestError, TileNotFoundError
from mapbuilder.serve.overzoom import overzoom, parent_at
from mapbuilder.serve.services import ServeServices
from mapbuilder.serve.tile_cache import CachedTile
from mapbuilder.tiles.dirty import mark_corrupt as mark_tile_corrupt
from mapbuilder.tiles.layers import LAYERS, LayerSpec, layer
from mapbuilder.tiles.mercator import Tile, tile_bounds
from mapbuilder.tiles.store import check_tile

log = logging.getLogger(__name__)
router = APIRouter(tags=["tiles"])
CORRUPT_RETRY_AFTER_S = 60
# Public layers need no key: OpenAPI's empty requirement (added to the key schemes) says so.
KEY_OPTIONAL: dict[str, Any] = {"security": [{}]}
TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/webp": {}, "image/png": {}, "application/vnd.mapbox-vector-tile": {}}},
    304: {"description": "the tile has not changed since the ETag in If-None-Match"},
}


def source_tile(spec: LayerSpec, tile: Tile) -> Tile:
    """The stored tile that answers for `tile`: itself, or its max-zoom parent for a vector layer."""
    z = tile[0]
    if spec.min_zoom <= z <= spec.max_zoom:
        return tile
    if z > spec.max_zoom and spec.kind == "vector":
        return parent_at(tile, spec.max_zoom)
    hint = " (clients over-zoom raster tiles themselves: TileJSON maxzoom says where to stop)"
    msg = f"layer {spec.name!r} has tiles at zooms {spec.min_zoom} to {spec.max_zoom}, not {z}" + (
        hint if z > spec.max_zoom else ""
    )
    raise TileNotFoundError(msg)


def etag_for(stored_etag: str, source: Tile, tile: Tile) -> str:
    """The tile's ETag: the stored sha256, or for an over-zoomed child one derived from its parent's."""
    if source == tile:
        return stored_etag
    return hashlib.sha256(f"{stored_etag}/{tile[0]}/{tile[1]}/{tile[2]}".encode()).hexdigest()


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks for GET)."""
    if not header:
        return False
    tags = [part.strip().removeprefix("W/").strip('"') for part in header.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/tiles/{layer_name}/{z}/{x}/{y}.{ext}",
    responses=TILE_RESPONSES,
    response_class=Response,
    summary="One XYZ tile of a layer",
    dependencies=KEYED,
    openapi_extra=KEY_OPTIONAL,
)
async def get_tile(layer_name: str, z: int, x: int, y: int, ext: str, request: Request) -> Response:
    """A tile with a strong ETag; 304 when If-None-Match names it; 404 outside coverage.

    Vector layers are over-zoomed by the server above their max zoom; raster layers are not.
    Async so that a cached tile for a cached key costs no thread hop; the catalog and the
    store are used from the thread pool.
    """
    spec = layer(layer_name)
    if ext != spec.ext:
        msg = f"layer {spec.name!r} is served as .{spec.ext}: request /tiles/{spec.name}/{z}/{x}/{y}.{spec.ext}"
        raise BadTileRequestError(msg)
    tile = check_tile((z, x, y))
    services = services_of(request)
    public = spec.name in services.settings.public_layers
    key = None
    if not public:
        key = admit_cached(services, presented_key(request)) or await run_in_threadpool(
            require_key, request
        )
    cached = services.cache.get(spec.name, tile)
    if cached is None:
        cached = await run_in_threadpool(load_tile, services, spec, tile)
    headers = tile_headers(services, cached.etag, public=public)
    if etag_matches(request.headers.get("if-none-match"), cached.etag):
        return Response(status_code=304, headers=headers)
    if key is not None:
        services.meter.add(key.key_id, tiles=1, credits=services.settings.credits_per_tile)
    return Response(cached.data, media_type=spec.media_type, headers=headers)


def load_tile(services: ServeServices, spec: LayerSpec, tile: Tile) -> CachedTile:
    """Read a tile (or cut it from its max-zoom parent), verified, and keep it in the cache.

    A corrupt tile is reported and never served; an absent one is outside the coverage.
    """
    source = source_tile(spec, tile)
    try:
        stored = services.tiles.get(spec.name, source)
    except CorruptTileError:
        mark_corrupt(services, spec.name, source)
        raise
    if stored is None:
        raise _outside(spec, tile)
    data = stored.data if source == tile else overzoom(stored.data, source, tile)
    etag = etag_for(stored.etag, source, tile)
    services.cache.put(spec.name, tile, data, etag, stored.etag)
    return CachedTile(data, etag, 0.0, stored.etag)


def revalidate(services: ServeServices) -> int:
    """Check the cached tiles in use against the store: renew the unchanged, drop the rebuilt.

    Entries are due at half their time to live, so one still in use is renewed before it would
    expire and no request has to read it again. How many were checked.
    """
    cache = services.cache
    due = cache.due(age_s=cache.ttl_s / 2)
    for layer_name, tile, entry in due:
        checked_at = cache.clock()
        stored_etag = services.tiles.head(layer_name, source_tile(LAYERS[layer_name], tile))
        if stored_etag == entry.stored_etag:
            cache.renew(layer_name, tile, entry, checked_at=checked_at)
        else:
            cache.drop(layer_name, tile)
    return len(due)


def mark_corrupt(services: ServeServices, layer_name: str, tile: Tile) -> None:
    """Tell the tile builders a stored tile is damaged, so the next build rewrites it.

    A failure to record it is logged, not raised: the damaged tile is refused (503) either way.
    """
    try:
        mark_tile_corrupt(services.catalog, layer_name, tile)
    except (SQLAlchemyError, IngestError) as exc:
        log.error("could not mark %s tile %s corrupt: %s", layer_name, tile, exc)


def _outside(spec: LayerSpec, tile: Tile) -> TileNotFoundError:
    z, x, y = tile
    return TileNotFoundError(
        f"no {spec.name} tile at {z}/{x}/{y}: that is outside the layer's coverage "
        f"(see bounds in /tiles/{spec.name}/tilejson.json)"
    )


def tile_headers(services: ServeServices, etag: str, *, public: bool) -> dict[str, str]:
    """ETag, caching and Vary headers of a tile answer (200 and 304 alike)."""
    scope = "public" if public else "private"
    return {
        "ETag": f'"{etag}"',
        "Cache-Control": f"{scope}, max-age={services.settings.tile_max_age_s}",
        "Vary": "X-API-Key",
    }


@router.get(
    "/tiles/{layer_name}/tilejson.json",
    summary="TileJSON 3.0 of a layer",
    dependencies=KEYED,
    openapi_extra=KEY_OPTIONAL,
)
def tilejson(layer_name: str, request: Request) -> dict[str, Any]:
    """Where a layer's tiles are, their zooms, bounds and (for vector layers) their fields."""
    spec = layer(layer_name)
    services = services_of(request)
    if spec.name not in services.settings.public_layers:
        require_key(request)
    return tilejson_document(spec, request, services)


def tilejson_document(spec: LayerSpec, request: Request, services: ServeServices) -> dict[str, Any]:
    """The TileJSON 3.0 document; the tile URL carries the caller's key when it came as ?key=."""
    url = str(request.base_url).rstrip("/") + f"/tiles/{spec.name}/{{z}}/{{x}}/{{y}}.{spec.ext}"
    if request.query_params.get(KEY_QUERY) and presented_key(request):
        url += f"?{KEY_QUERY}={request.query_params[KEY_QUERY]}"
    document: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": spec.name,
        "description": spec.description,
        "scheme": "xyz",
        "tiles": [url],
        "minzoom": spec.min_zoom,
        "maxzoom": spec.max_zoom,
        "bounds": layer_bounds(services, spec),
    }
    if spec.kind == "vector":
        # The server over-zooms vector tiles, so a client may ask above maxzoom; MapLibre
        # over-zooms them itself when told maxzoom, which saves the requests.
        document["vector_layers"] = [
            {
                "id": spec.name,
                "description": spec.description,
                "minzoom": spec.min_zoom,
                "maxzoom": spec.max_zoom,
                "fields": COVERAGE_FIELDS,
            }
        ]
    return document


COVERAGE_FIELDS = {
    "segment_id": "String",
    "coverage": "Number",
    "last_capture": "String",
    "captures": "Number",
    "reward_weight": "Number",
}


def layer_bounds(services: ServeServices, spec: LayerSpec) -> list[float]:
    """[west, south, east, north] of the tiles stored at the layer's lowest zoom (the world when none)."""
    boxes = [tile_bounds(tile) for tile in services.tiles.list(spec.name, spec.min_zoom)]
    if not boxes:
        return [-180.0, -85.0511, 180.0, 85.0511]
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


@router.get("/v1/layers", summary="The published layers")
def list_layers(request: Request) -> dict[str, Any]:
    """Every layer, whether it needs a key, and where its TileJSON is."""
    services = services_of(request)
    return {
        "layers": [
            {
                "name": spec.name,
                "kind": spec.kind,
                "format": spec.ext,
                "minzoom": spec.min_zoom,
                "maxzoom": spec.max_zoom,
                "description": spec.description,
                "public": spec.name in services.settings.public_layers,
                "tilejson": f"/tiles/{spec.name}/tilejson.json",
            }
            for spec in LAYERS.values()
        ]
    }
