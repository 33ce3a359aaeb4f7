"""Malformed and forged requests to the consumer API: tile addresses, imagery queries, keys and
signed image URLs. Each case sends its request through a `Consumer` (a served API with frames,
tiles and a key) and gets the answer back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from mapbuilder.serve.keys import parse_key, revoke_key
from mapbuilder.tiles.mercator import Tile
from tests.reliability.bad_corpus import BadCase
from tests.serve_helpers import ORIGIN, START, MapApi, SeededFrame

REFUSED = "refusal logged (INFO, with the key's id); nothing metered to the key"
TILES, IMAGERY, KEYS = (
    "consumer API: tiles",
    "consumer API: imagery queries",
    "consumer API: keys and image URLs",
)


@dataclass
class Consumer:
    """A served consumer API with published frames and tiles, and a key."""

    api: MapApi
    frames: list[SeededFrame]
    tiles: dict[str, Tile]

    def get(self, path: str, key: str | None = None, **params: str) -> httpx.Response:
        return self.api.http.get(path, params=params, headers=self.api.keyed(key))

    def query(self, body: bytes | dict[str, Any]) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**self.api.keyed(), "content-type": "application/json"}
        return self.api.http.post("/v1/imagery/query", content=content, headers=headers)

    def tile(
        self, z: object, x: object, y: object, ext: str = "webp", layer: str = "imagery"
    ) -> httpx.Response:
        return self.get(f"/tiles/{layer}/{z}/{x}/{y}.{ext}")

    def image_url(self, frame: SeededFrame) -> str:
        """The signed image URL an imagery query returns for `frame`."""
        return str(self.get(f"/v1/frames/{frame.frame_id}").json()["image_url"])


def _case(
    entry: str, name: str, status: int, says: str, send: Callable[[Consumer], httpx.Response]
) -> BadCase:
    return BadCase(entry, name, says, REFUSED, send, status)


def _ring(*corners: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[*map(list, corners), list(corners[0])]]}


LON, LAT = ORIGIN
AROUND = _ring(
    (LON - 0.01, LAT - 0.01),
    (LON + 0.01, LAT - 0.01),
    (LON + 0.01, LAT + 0.01),
    (LON - 0.01, LAT + 0.01),
)
WINDOW = {"start": START.isoformat(), "end": "2027-01-01T00:00:00Z"}


def _query(geometry: Any = None, **changes: Any) -> dict[str, Any]:
    return {"geometry": AROUND if geometry is None else geometry, **WINDOW, **changes}


def _z17(c: Consumer, dx: int = 0) -> tuple[int, int, int]:
    z, x, y = c.tiles["imagery"]
    return z, x + dx, y


TILE_CASES = [
    _case(TILES, "zoom 99", 400, "zoom 99 is out of range", lambda c: c.tile(99, 0, 0)),
    _case(
        TILES, "column beyond the zoom's range", 400, "does not exist", lambda c: c.tile(3, 8, 1)
    ),
    _case(
        TILES,
        "path traversal in the layer",
        404,
        "no such endpoint",
        lambda c: c.get("/tiles/..%2F..%2Fetc/17/1/1.webp"),
    ),
    _case(
        TILES, "wrong extension", 400, "is served as .webp", lambda c: c.tile(*_z17(c), ext="png")
    ),
    _case(
        TILES,
        "unknown layer",
        404,
        "unknown tile layer",
        lambda c: c.tile(*_z17(c), layer="satellite"),
    ),
    _case(TILES, "zoom not a number", 422, "z", lambda c: c.tile("seventeen", 1, 1)),
    _case(TILES, "zoom 2^70", 400, "out of range", lambda c: c.tile(2**70, 0, 0)),
]

BOW_TIE = _ring((LON, LAT), (LON + 0.01, LAT + 0.01), (LON + 0.01, LAT), (LON, LAT + 0.01))
HUGE = _ring((20.0, 59.0), (26.0, 59.0), (26.0, 61.0), (20.0, 61.0))
IMAGERY_CASES = [
    _case(
        IMAGERY,
        "bow-tie polygon",
        400,
        "is not a valid polygon",
        lambda c: c.query(_query(BOW_TIE)),
    ),
    _case(
        IMAGERY,
        "empty shell with a hole",
        400,
        "not readable GeoJSON",
        lambda c: c.query(
            _query({"type": "Polygon", "coordinates": [[], AROUND["coordinates"][0]]})
        ),
    ),
    _case(
        IMAGERY,
        "polygon of 70 000 km²",
        400,
        "split it into smaller polygons",
        lambda c: c.query(_query(HUGE)),
    ),
    _case(
        IMAGERY,
        "latitude 95",
        400,
        "leaves the Earth",
        lambda c: c.query(_query(_ring((LON, 95.0), (LON + 0.01, 95.0), (LON, 94.9)))),
    ),
    _case(
        IMAGERY,
        "NaN in a ring",
        400,
        "not readable GeoJSON",
        lambda c: c.query(
            json.dumps(
                _query(_ring((LON, float("nan")), (LON + 0.01, LAT), (LON, LAT + 0.01)))
            ).encode()
        ),
    ),
    _case(
        IMAGERY,
        "start that is not a time",
        422,
        "start",
        lambda c: c.query(_query(start="yesterday")),
    ),
    _case(
        IMAGERY,
        "end before start",
        400,
        "the time window is empty",
        lambda c: c.query(_query(end="2020-01-01T00:00:00Z")),
    ),
    _case(
        IMAGERY,
        "a billion frames a page",
        400,
        "page may hold",
        lambda c: c.query(_query(limit=10**9)),
    ),
    _case(
        IMAGERY,
        "forged cursor",
        400,
        "the cursor is not one this API returned",
        lambda c: c.query(_query(cursor="bm90IG91cnM")),
    ),
    _case(
        IMAGERY,
        "body not UTF-8",
        400,
        "JSON in UTF-8",
        lambda c: c.query(b'{"geometry": "\x80\xff"}'),
    ),
    _case(
        IMAGERY,
        "JSON nested 100 000 deep",
        400,
        "JSON in UTF-8",
        lambda c: c.query(b"[" * 100_000 + b"]" * 100_000),
    ),
    _case(
        IMAGERY,
        "bbox of three numbers",
        400,
        "is not four numbers",
        lambda c: c.get("/v1/frames.geojson", bbox="24.9,60.1,25.0"),
    ),
]


def _revoked(c: Consumer) -> httpx.Response:
    key = c.api.new_key("revoked")
    revoke_key(c.api.services.catalog, parse_key(key)[0])
    return c.get("/v1/account/usage", key=key)


def _forged_signature(c: Consumer) -> httpx.Response:
    url = c.image_url(c.frames[0])
    return c.api.http.get(url[:-8] + "00000000")


def _expired(c: Consumer) -> httpx.Response:
    path = c.api.services.signer.sign(c.frames[0].frame_id, now_s=time.time() - 86_400).path
    return c.api.http.get(path)


def _other_frame(c: Consumer) -> httpx.Response:
    url = c.image_url(c.frames[0])
    return c.api.http.get(url.replace(c.frames[0].frame_id, c.frames[1].frame_id))


KEY_CASES = [
    _case(KEYS, "no key", 401, "needs an API key", lambda c: c.api.http.get("/v1/account/usage")),
    _case(
        KEYS,
        "malformed key",
        401,
        "malformed",
        lambda c: c.get("/v1/account/usage", key="let-me-in"),
    ),
    _case(
        KEYS,
        "key never issued",
        401,
        "not known",
        lambda c: c.get("/v1/account/usage", key="rs_0123456789ab_" + "A" * 43),
    ),
    _case(KEYS, "revoked key", 401, "was revoked", _revoked),
    _case(KEYS, "image URL with a forged signature", 403, "signature is wrong", _forged_signature),
    _case(KEYS, "image URL past its expiry", 403, "has expired", _expired),
    _case(KEYS, "image URL moved to another frame", 403, "signature is wrong", _other_frame),
]

CONSUMER_CASES = [*TILE_CASES, *IMAGERY_CASES, *KEY_CASES]
