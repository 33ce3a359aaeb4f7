"""Fixtures of the fault-injection suite: the drive sent through the server pipeline, and what the
pipeline makes of it without faults."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ingest.catalog import utcnow
from ingest.storage import LocalObjectStore
from rewards.epochs import Epoch
from roadswarm.sim.world import World
from tests.ingest_helpers import catalog_at
from tests.reliability.outcome import Outcome, outcome
from tests.reliability.pipeline import Drive, run_in_process, seed
from tests.tile_helpers import calibration_of, keyframes


@pytest.fixture(scope="session")
def pipeline_drive(grid_world: World, short_drive: Path) -> Drive:
    """The short drive's first keyframes in two sequences, captured ten minutes ago (within this
    week's epoch)."""
    now = utcnow().replace(microsecond=0)
    start = max(now - timedelta(minutes=10), Epoch.containing(now).start + timedelta(minutes=1))
    frames = keyframes(grid_world, short_drive)
    return Drive.cut(frames, calibration_of(short_drive), grid_world, start)


@pytest.fixture(scope="session")
def reference(pipeline_drive: Drive, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """What the pipeline makes of the drive in one process, with no fault."""
    folder = tmp_path_factory.mktemp("reference")
    store = LocalObjectStore(folder / "store")
    with catalog_at("sqlite", folder) as catalog:
        seed(catalog, store, pipeline_drive)
        run_in_process(catalog, store, pipeline_drive)
        return outcome(catalog, store, pipeline_drive)
