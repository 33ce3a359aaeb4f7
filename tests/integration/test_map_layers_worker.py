"""The `layers.update` task in a real Celery worker on Redis over PostgreSQL: it builds the same
coverage and freshness tiles an in-process build does, and clears the dirty marks."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from ingest.catalog import utcnow
from ingest.db import Catalog
from ingest.queues import LAYERS_UPDATE_TASK, TILES_QUEUE, create_celery_app
from ingest.storage import LocalObjectStore, ObjectStore
from mapbuilder.layers.marking import mark_segments_dirty, segments_of_sequences
from mapbuilder.tiles.catalog import TileRow
from mapbuilder.tiles.layers import EAGER_MIN_ZOOM
from roadswarm.map_layers import build_layers
from roadswarm.stack import ingest_worker
from tests.ingest_helpers import catalog_at, postgres_database, require_redis
from tests.rewards_helpers import Capture, drive, seed_catalog

REDIS_URL = "redis://127.0.0.1:6379/8"  # this suite's database on the shared Redis
SETTLE_TIMEOUT_S = 120


def recent_captures() -> list[Capture]:
    """Device 1 on seg-a and seg-c two hours ago (the same freshness bucket for a day)."""
    start = utcnow() - timedelta(hours=2)
    return [*drive(1, "seg-a", start, length_m=100), *drive(1, "seg-c", start, length_m=60)]


def _layer_tiles(store: ObjectStore) -> dict[str, bytes]:
    return {
        o.key: store.get_bytes(o.key)
        for prefix in ("tiles/coverage/", "tiles/freshness/")
        for o in store.list(prefix)
    }


def _settled(catalog: Catalog) -> bool:
    with catalog.session() as session:
        rows = session.scalars(
            select(TileRow).where(TileRow.layer.in_(["coverage", "freshness"]))
        ).all()
    eager = [r for r in rows if r.z >= EAGER_MIN_ZOOM]
    # The low zooms stay dirty for the hourly refresh.
    return bool(eager) and all(r.dirty_since is None for r in eager)


def test_worker_builds_the_layers_as_in_process(tmp_path: Path) -> None:
    """A queued update builds the tiles of its segments byte-identical to an in-process build."""
    require_redis()
    captures = recent_captures()
    store_dir = tmp_path / "store"
    app = create_celery_app(REDIS_URL)
    with postgres_database() as url:
        catalog = Catalog.connect(url)
        ids = seed_catalog(catalog, captures, now=utcnow() - timedelta(days=1))
        worker = ingest_worker(
            broker_url=REDIS_URL,
            database_url=url,
            store_dir=store_dir,
            workdir=tmp_path / "worker",
            queues=[TILES_QUEUE],
            concurrency=1,
            name="layers-test",
        )
        try:
            with worker:
                app.send_task(LAYERS_UPDATE_TASK, args=[[[ids[1], "s"]]], queue=TILES_QUEUE)
                deadline = time.monotonic() + SETTLE_TIMEOUT_S
                while not _settled(catalog) and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert _settled(catalog), "layers not built in time"
        finally:
            app.close()
            catalog.dispose()
    worker_tiles = _layer_tiles(LocalObjectStore(store_dir))
    with catalog_at("sqlite", tmp_path) as local:
        local_ids = seed_catalog(local, captures, now=utcnow() - timedelta(days=1))
        segments = segments_of_sequences(local, [(local_ids[1], "s")])
        assert segments == {"seg-a", "seg-c"}
        mark_segments_dirty(local, segments, now=utcnow())
        store = LocalObjectStore(tmp_path / "local-store")
        build_layers(local, store, now=utcnow(), min_zoom=EAGER_MIN_ZOOM)
        assert _layer_tiles(store) == worker_tiles
    assert any(key.endswith(".pbf") for key in worker_tiles)
    assert min(int(key.split("/")[2]) for key in worker_tiles) == EAGER_MIN_ZOOM
