"""Celery task of the coverage and freshness layers (queue `tiles`): a thin wrapper around
`mapbuilder.layers.build`, here in the composition layer because the reward weights it draws come
from `rewards`, which `mapbuilder` must not import.

`layers.update` marks the tiles of the segments that matched sequences lie on and builds every
dirty coverage and freshness tile. `layers.refresh` (hourly, from the scheduler) does the same for
the segments whose captures crossed a freshness colour's age bound. Both are idempotent: run twice,
the second run finds nothing dirty (or rebuilds identical bytes and writes nothing).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from ingest.catalog import utcnow
from ingest.queues import LAYERS_REFRESH_TASK, LAYERS_UPDATE_TASK
from ingest.settings import QueueSettings
from ingest.tasks import RETRY, worker_context
from mapbuilder.layers.marking import mark_segments_dirty, segments_of_sequences
from mapbuilder.tiles.layers import EAGER_MIN_ZOOM
from roadswarm.map_layers import build_layers, refresh_aged


def update_layers_job(keys: list[list[str]]) -> dict[str, Any]:
    """Mark the layer tiles of these (device_id, sequence_id) sequences and build what is dirty
    from EAGER_MIN_ZOOM up."""
    context = worker_context()
    now = utcnow()
    segments = segments_of_sequences(context.catalog, [(d, s) for d, s in keys])
    marked = mark_segments_dirty(context.catalog, segments, now=now) if segments else {}
    result = build_layers(context.catalog, context.store, now=now, min_zoom=EAGER_MIN_ZOOM)
    return {"segments": len(segments), "marked": marked, "written": result.written}


def refresh_layers_job() -> dict[str, Any]:
    """Rebuild the tiles of segments whose captures aged into the next freshness colour since
    the previous run (the window overlaps it twice over: a late or missed run loses nothing)."""
    context = worker_context()
    window = timedelta(seconds=2 * QueueSettings().layers_refresh_every_s)
    result = refresh_aged(context.catalog, context.store, now=utcnow(), window=window)
    return {"marked": result.marked, "written": result.written}


update_layers_task = shared_task(name=LAYERS_UPDATE_TASK, **RETRY)(update_layers_job)
refresh_layers_task = shared_task(name=LAYERS_REFRESH_TASK, **RETRY)(refresh_layers_job)
