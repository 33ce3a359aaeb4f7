"""A raw ASGI fast path for the hottest request: a tile already in the in-process cache.

FastAPI spends about a millisecond per request on routing, parameter validation and middleware;
a cached tile needs none of it. This wrapper answers such requests itself, with the same headers
the tile route sends (ETag, Cache-Control, Vary, CORS, 304). A keyed layer's tile is answered here
too when the key and a rate-limit token are in this process's memory (auth.admit_cached), and
its use is metered as the route meters it. Everything else (cache misses, keys to look up, empty
token blocks, errors, other origins, other query parameters) goes to the full app.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from mapbuilder.serve.auth import KEY_QUERY, admit_cached
from mapbuilder.serve.keys import ApiKey
from mapbuilder.serve.services import ServeServices
from mapbuilder.serve.tile_cache import CachedTile
from mapbuilder.serve.tiles_api import etag_matches, tile_headers
from mapbuilder.tiles.layers import LAYERS, LayerSpec

_TILE_PATH = re.compile(r"/tiles/([a-z]+)/(\d{1,2})/(\d{1,8})/(\d{1,8})\.([a-z]+)")
EXPOSED = b"ETag, Retry-After, Cache-Control"
KEY_HEADER = b"x-api-key"
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
Headers = dict[bytes, bytes]


class CachedTileFastPath:
    """Serve cached tiles directly; pass every other request to `app`."""

    def __init__(self, app: ASGIApp, services: ServeServices) -> None:
        self.app = app
        self.services = services
        self.any_origin = services.settings.cors_origins == ("*",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from the cache when it can, else run the app."""
        answer = (
            self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        )
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> Answer | None:
        """Status, headers and body when the request is for a cached tile it may have, else None."""
        match = _TILE_PATH.fullmatch(scope["path"])
        if match is None:
            return None
        name, z, x, y, ext = match.groups()
        spec = LAYERS.get(name)
        # The first of repeated headers counts, as in Starlette's request.headers.get.
        request_headers = dict(reversed(scope["headers"]))
        if spec is None or ext != spec.ext or not self._origin_allowed(request_headers):
            return None
        cached = self.services.cache.get(name, (int(z), int(x), int(y)))
        if cached is None:
            return None
        public = name in self.services.settings.public_layers
        if public and scope.get("query_string"):
            return None
        key = None if public else self._admit(scope, request_headers)
        if not public and key is None:
            return None
        return self._tile(spec, cached, request_headers, key)

    def _origin_allowed(self, request_headers: Headers) -> bool:
        """Cross-origin requests are answered here only when any origin may call (else CORS decides)."""
        return self.any_origin or b"origin" not in request_headers

    def _admit(self, scope: Scope, request_headers: Headers) -> ApiKey | None:
        """The key with one token spent, when memory alone can say so; None (nothing spent) otherwise."""
        presented = request_headers.get(KEY_HEADER, b"").decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if len(pairs) != 1 or pairs[0][0] != KEY_QUERY:
                return None  # other parameters: the route decides what they mean
            presented = presented or pairs[0][1]
        return admit_cached(self.services, presented or None)

    def _tile(
        self, spec: LayerSpec, cached: CachedTile, request_headers: Headers, key: ApiKey | None
    ) -> Answer:
        """The 200 or 304 answer, metering a 200 to the key as the tile route does."""
        plain = tile_headers(self.services, cached.etag, public=key is None)
        plain["Vary"] += ", Origin"  # as Starlette's CORS middleware says it, Origin or not
        headers = _raw(plain)
        if b"origin" in request_headers:
            headers += [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSED),
            ]
        none_match = request_headers.get(b"if-none-match", b"").decode("latin-1")
        if etag_matches(none_match, cached.etag):
            return 304, headers, b""
        if key is not None:
            settings = self.services.settings
            self.services.meter.add(key.key_id, tiles=1, credits=settings.credits_per_tile)
        headers += [
            (b"content-type", spec.media_type.encode()),
            (b"content-length", str(len(cached.data)).encode()),
        ]
        return 200, headers, cached.data


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]
