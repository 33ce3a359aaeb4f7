"""Celery task of the matching stage (queue `match`): a thin wrapper around `match_sequences`.

Each worker process keeps the catalog's road network and its matcher in memory, and reloads them
when an import has changed the network.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from celery import current_app, shared_task

from ingest.queues import LAYERS_UPDATE_TASK, MATCH_TASK, TILES_POSES_TASK, TILES_QUEUE
from ingest.tasks import RETRY, worker_context
from mapbuilder.catalog import load_network, network_version
from mapbuilder.errors import NoRoadsError
from mapbuilder.match_stage import match_sequences
from mapbuilder.matching.matcher import MapMatcher

log = logging.getLogger(__name__)
_matchers: dict[int, tuple[tuple[int, datetime | None], MapMatcher]] = {}


def worker_matcher() -> MapMatcher | None:
    """This process's matcher over the catalog's current network (None: no network imported)."""
    catalog = worker_context().catalog
    version = network_version(catalog)
    cached = _matchers.get(os.getpid())
    if cached is not None and cached[0] == version:
        return cached[1]
    try:
        matcher = MapMatcher(load_network(catalog))
    except NoRoadsError:
        return None
    _matchers[os.getpid()] = (version, matcher)
    return matcher


def match_job(keys: list[list[str]]) -> dict[str, Any]:
    """Match the accepted frames of these (device_id, sequence_id) sequences."""
    matcher = worker_matcher()
    if matcher is None:
        log.warning("no road network in the catalog: %d sequences stay unmatched", len(keys))
        return {"frames": 0, "on_segment": 0, "no_network": True}
    result = match_sequences(worker_context().catalog, matcher, [(d, s) for d, s in keys])
    if result.frames:
        # The tiles under these frames (imagery; coverage and freshness) are rebuilt on their own queue.
        current_app.send_task(TILES_POSES_TASK, args=[keys], queue=TILES_QUEUE)
        current_app.send_task(LAYERS_UPDATE_TASK, args=[keys], queue=TILES_QUEUE)
    return {"frames": result.frames, "on_segment": result.on_segment}


match_task = shared_task(name=MATCH_TASK, **RETRY)(match_job)
