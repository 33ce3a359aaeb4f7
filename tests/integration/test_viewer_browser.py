"""The web viewer in a real headless Chromium: it loads, draws the layers, and opens a frame."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, sync_playwright
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.web import VENDOR_FILE
from tests.serve_helpers import MapApi, SeededFrame, seed_frames, seed_tiles, served_map_api

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Software WebGL: the CI machine has no GPU.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
TIMEOUT_MS = 120_000  # generous: the CI machine is shared and software WebGL is slow
POLL_MS = 200
MISS_DELAY_S = 1.0


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Debian's chromium is required (.ci/run installs it): apt-get install chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    assert VENDOR_FILE.exists(), "MapLibre GL is not built: run `make setup`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def slow_misses(app: ASGIApp) -> ASGIApp:
    """`app`, with every tile answered 404 (outside the coverage) held back by MISS_DELAY_S.

    Then the last tiles of the first view to arrive are always misses: MapLibre repaints after
    a tile with data but not after a 404, so a page that waits for its 'load' or 'idle' event
    before asking for the frames never asks (the defect this makes certain instead of rare).
    """

    async def delayed(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_late(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 404:
                await asyncio.sleep(MISS_DELAY_S)
            await send(message)

        tile = scope["type"] == "http" and scope["path"].startswith("/tiles/")
        await app(scope, receive, send_late if tile else send)

    return delayed


@pytest.fixture
def viewer(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[tuple[MapApi, list[SeededFrame]]]:
    """The API with frames and one tile of each layer at the frames, its misses slowed down."""
    store = LocalObjectStore(tmp_path / "store")
    frames = seed_frames(sqlite_catalog, store, 8)
    seed_tiles(store)
    with served_map_api(sqlite_catalog, store, wrap=slow_misses) as api:
        yield api, frames


def _open(page: Page, api: MapApi) -> None:
    """Load the page with the key in its URL and wait, without touching the map, until its tiles
    are in and the frames it asked for on its own are drawn."""
    failed: list[str] = []
    asked: list[str] = []

    def note(request: Request) -> None:
        if "/v1/frames.geojson" in request.url:
            asked.append(request.url)

    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("request", note)
    page.goto(f"{api.url}/?key={api.key}")
    page.wait_for_function(
        "window.roadswarmMap && window.roadswarmMap.loaded()", timeout=TIMEOUT_MS, polling=POLL_MS
    )
    # No pan, no event: the page asks for the frames in its view by itself (it once waited for
    # MapLibre's 'load', which never came when the last tile of the first view was a 404).
    page.wait_for_function(
        "window.roadswarmMap.queryRenderedFeatures({layers: ['frames']}).length > 0",
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    assert asked, "the page drew frames it never asked for"
    assert page.locator("#frame-count").inner_text() == "8 frames in view"
    page.wait_for_function("window.roadswarmMap.areTilesLoaded()", timeout=TIMEOUT_MS)
    assert not [url for url in failed if not url.startswith(api.url)], failed


def test_page_loads_and_layers_draw(
    browser: Browser, viewer: tuple[MapApi, list[SeededFrame]]
) -> None:
    """The map canvas shows more than the background: tiles and frames are drawn."""
    api, _ = viewer
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _open(page, api)
    pixels = np.asarray(
        Image.open(io.BytesIO(page.locator("#map canvas").screenshot())).convert("RGB")
    )
    colours = {tuple(int(c) for c in p) for p in pixels.reshape(-1, 3)[::97]}
    assert len(colours) > 5, f"the canvas is (nearly) blank: {sorted(colours)[:10]}"
    background = np.array([0xE8, 0xE4, 0xDA])
    drawn = np.abs(pixels.astype(int) - background).sum(axis=2) > 30
    assert drawn.mean() > 0.05
    assert any("/tiles/imagery/" in url for url in requested)
    own = (api.url, f"blob:{api.url}", "data:")  # MapLibre's worker comes from a blob URL
    assert all(url.startswith(own) for url in requested), "the page must not reach the internet"
    page.close()


def test_clicking_a_frame_opens_its_image(
    browser: Browser, viewer: tuple[MapApi, list[SeededFrame]]
) -> None:
    """A click on a frame's dot shows its blurred image, capture time and road segment."""
    api, frames = viewer
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    _open(page, api)
    target = frames[4]
    # Frames are 4 m apart: zoom in until each has its own dot, and click only once the dot
    # under the point is the target's.
    page.evaluate(
        "([lon, lat]) => window.roadswarmMap.jumpTo({center: [lon, lat], zoom: 20})",
        [target.lon, target.lat],
    )
    point = page.evaluate(
        "([lon, lat]) => { const p = window.roadswarmMap.project([lon, lat]); return [p.x, p.y]; }",
        [target.lon, target.lat],
    )
    page.wait_for_function(
        "([x, y, id]) => { const hit = window.roadswarmMap.queryRenderedFeatures([x, y], {layers: ['frames']});"
        " return hit.length > 0 && hit[0].properties.frame_id === id; }",
        arg=[point[0], point[1], target.frame_id],
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    box = page.locator("#map canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    page.wait_for_function(
        "document.getElementById('frame-image').complete && "
        "document.getElementById('frame-image').naturalWidth > 0",
        timeout=TIMEOUT_MS,
        polling=POLL_MS,
    )
    assert page.locator("#frame-segment").inner_text() == "seg-north"
    shown = page.locator("#frame-time").inner_text()
    assert shown.startswith(target.captured_at.isoformat()[:19])
    assert page.evaluate("document.getElementById('frame-image').naturalWidth") == 320
    page.close()
