"""A raw ASGI fast path for the hottest request: a cached tile of a public layer.

FastAPI spends about a millisecond per request on routing, parameter validation and middleware;
a tile already in the in-process cache needs none of it. This wrapper answers such requests
itself, with the same headers the tile route sends (ETag, Cache-Control, Vary, CORS, 304), and
hands everything else (keyed layers, cache misses, errors, other origins) to the full app.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from mapbuilder.serve.services import ServeServices
from mapbuilder.serve.tiles_api import etag_matches, tile_headers
from mapbuilder.tiles.layers import LAYERS

_TILE_PATH = re.compile(r"/tiles/([a-z]+)/(\d{1,2})/(\d{1,8})/(\d{1,8})\.([a-z]+)")
EXPOSED = b"ETag, Retry-After, Cache-Control"
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class CachedTileFastPath:
    """Serve cached public tiles directly; pass every other request to `app`."""

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
        """Status, headers and body when the request is for a cached public tile, else None."""
        match = _TILE_PATH.fullmatch(scope["path"])
        if match is None or scope.get("query_string"):
            return None
        name, z, x, y, ext = match.groups()
        spec = LAYERS.get(name)
        if spec is None or ext != spec.ext or name not in self.services.settings.public_layers:
            return None
        cached = self.services.cache.get(name, (int(z), int(x), int(y)))
        request_headers = dict(scope["headers"])
        if cached is None or (b"origin" in request_headers and not self.any_origin):
            return None
        plain = tile_headers(self.services, cached.etag, public=True)
        if b"origin" in request_headers:
            plain["Vary"] += ", Origin"  # as Starlette's CORS middleware says it
        headers = _raw(plain)
        if b"origin" in request_headers:
            headers += [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSED),
            ]
        none_match = request_headers.get(b"if-none-match", b"").decode("latin-1")
        if etag_matches(none_match, cached.etag):
            return 304, headers, b""
        headers += [
            (b"content-type", spec.media_type.encode()),
            (b"content-length", str(len(cached.data)).encode()),
        ]
        return 200, headers, cached.data


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]
