"""Celery tasks of the simulator: render a drive on a worker and store it in the object store."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import shared_task

from ingest.storage import LocalObjectStore
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.gnss import GnssOptions
from roadswarm.sim.world import World

CONTENT_TYPES = {
    "video.mp4": "video/mp4",
    "calibration.json": "application/json",
    "truth.json": "application/json",
    "track.gpx": "application/gpx+xml",
    "track.nmea": "text/plain",
}


def drive_prefix(device: str, seed: int) -> str:
    """Object-store prefix of one simulated drive: same device and seed, same keys."""
    return f"sim/drives/{device}/seed-{seed}/"


def render_and_store(world_dir: Path, store_root: Path, options: DriveOptions) -> dict[str, Any]:
    """Render a drive in a scratch folder, then put each file into the store under its prefix.

    Rendering the same options again gives the same keys, so a redelivered task overwrites rather
    than duplicates.
    """
    store = LocalObjectStore(store_root)
    prefix = drive_prefix(options.device, options.seed)
    with tempfile.TemporaryDirectory(prefix="roadswarm-drive-") as scratch:
        summary = simulate_drive(World.load(world_dir), Path(scratch), options)
        keys = {
            name: store.put_file(prefix + name, Path(scratch) / name, content_type=kind).key
            for name, kind in CONTENT_TYPES.items()
        }
    return {**asdict(summary), "out_dir": prefix, "objects": keys, "device": options.device}


def drive(world_dir: str, store_root: str, options: dict[str, Any]) -> dict[str, Any]:
    """Celery entry: JSON options in (`start_time` as ISO 8601 text), the drive summary out."""
    gnss = GnssOptions(**options.pop("gnss", {}))
    start = options.pop("start_time", None)
    chosen = DriveOptions(
        **options, gnss=gnss, start_time=datetime.fromisoformat(start) if start else None
    )
    return render_and_store(Path(world_dir), Path(store_root), chosen)


# Registered without decorator syntax so that the plain function keeps its types under mypy.
drive_task = shared_task(name="sim.drive", acks_late=True)(drive)
