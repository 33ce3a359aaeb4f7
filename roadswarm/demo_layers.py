"""The demo's coverage and freshness layers: built from its catalog once the drives are matched,
with a PMTiles snapshot of each beside the viewer's page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.catalog import FrameMatch
from mapbuilder.layers.marking import LAYER_NAMES, mark_segments_dirty
from mapbuilder.layers.pmtiles_export import EmptyLayerError, export_pmtiles
from mapbuilder.tiles.store import TileStore
from roadswarm.demo_ingest import catalog_url
from roadswarm.map_layers import build_layers


def build_demo_layers(workdir: Path, store_root: Path) -> dict[str, Any]:
    """Build the coverage and freshness tiles around the segments the drives were matched to
    (what the worker's `layers.update` does as matches arrive) and snapshot both layers into
    `workdir/site/<layer>.pmtiles`; what was written, per layer."""
    catalog = Catalog.connect(catalog_url(workdir), migrate_schema=False)
    store = LocalObjectStore(store_root)
    now = utcnow()
    started = time.perf_counter()
    try:
        with catalog.session() as session:
            matched = set(
                session.scalars(
                    select(FrameMatch.segment_id).where(FrameMatch.segment_id.is_not(None))
                ).all()
            )
        mark_segments_dirty(catalog, {s for s in matched if s is not None}, now=now)
        built = build_layers(catalog, store, now=now)
    finally:
        catalog.dispose()
    site = workdir / "site"
    site.mkdir(parents=True, exist_ok=True)
    snapshots = {}
    for name in LAYER_NAMES:
        try:
            exported = export_pmtiles(TileStore(store), name, site / f"{name}.pmtiles")
        except EmptyLayerError:
            continue  # no roads in the catalog: nothing to snapshot
        snapshots[name] = {"path": str(exported.path), "tiles": exported.tiles}
    return {
        "tiles": {name: sum(1 for _ in TileStore(store).list(name)) for name in LAYER_NAMES},
        "written": built.written,
        "pmtiles": snapshots,
        "seconds": round(time.perf_counter() - started, 1),
    }
