"""The demo's imagery layer: its drives' frames posed and stitched into z21 tiles and the pyramid
below, in this process once the drives are matched, with a PMTiles snapshot beside the viewer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.layers.pmtiles_export import EmptyLayerError, export_pmtiles
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.operations import build_imagery
from mapbuilder.tiles.store import TileStore
from roadswarm.demo_ingest import catalog_url


def build_demo_imagery(workdir: Path, store_root: Path) -> dict[str, Any]:
    """Pose the matched frames, build every dirty imagery tile, snapshot the layer to
    `workdir/site/imagery.pmtiles`; what was built, and how long it took."""
    started = time.monotonic()
    catalog = Catalog.connect(catalog_url(workdir), migrate_schema=False)
    store = LocalObjectStore(store_root)
    try:
        run = build_imagery(TileContext(catalog, store))
    finally:
        catalog.dispose()
    site = workdir / "site"
    site.mkdir(parents=True, exist_ok=True)
    try:
        snapshot: str | None = str(
            export_pmtiles(TileStore(store), IMAGERY, site / f"{IMAGERY}.pmtiles").path
        )
    except EmptyLayerError:
        snapshot = None  # no frame could be placed: nothing to snapshot
    spec = layer(IMAGERY)
    zooms = range(spec.min_zoom, spec.max_zoom + 1)
    by_zoom = {z: sum(1 for _ in TileStore(store).list(IMAGERY, z)) for z in zooms}
    return {
        "frames_posed": run.frames_posed,
        "frames_skipped": run.skipped,
        "tiles": sum(by_zoom.values()),
        "tiles_by_zoom": by_zoom,
        "pmtiles": snapshot,
        "seconds": round(time.monotonic() - started, 1),
    }
