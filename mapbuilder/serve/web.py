"""The web viewer: one page at `/`, its script and MapLibre GL JS, all served from the package.

MapLibre comes from the npm registry at build time (`make setup` copies it into `viewer/vendor/`),
so the page needs no internet: no CDN, no external style, fonts or glyphs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response

from ingest.api.errors import error_response

VIEWER_DIR = Path(__file__).with_name("viewer")
VENDOR_FILE = VIEWER_DIR / "vendor" / "maplibre-gl.js"
STATIC_FILES = ("viewer.js", "viewer.css", "vendor/maplibre-gl.js", "vendor/maplibre-gl.css")


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/viewer/`."""
    app.get("/", include_in_schema=False)(index)
    for name in STATIC_FILES:
        app.get(f"/viewer/{name}", include_in_schema=False)(_file_route(name))


def index() -> Response:
    """The viewer page, or a JSON error saying how to build it when MapLibre is missing."""
    if not VENDOR_FILE.exists():
        return _not_built()
    return FileResponse(VIEWER_DIR / "index.html", media_type="text/html")


def _not_built() -> JSONResponse:
    return error_response(
        503,
        "viewer_not_built",
        f"the web viewer's MapLibre GL is missing ({VENDOR_FILE}): run `make setup` to fetch it",
    )


def _file_route(name: str) -> Callable[[], Response]:
    """A route for one named file: a fixed list, so no request path can reach any other file."""
    path = VIEWER_DIR / name

    def serve() -> Response:
        if not path.exists():
            return _not_built()
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    return serve
