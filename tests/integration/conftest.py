"""Fixtures of the integration suites that several modules share."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World
from tests.integration.edge_drive import process_args, roadswarm


@pytest.fixture(scope="session")
def short_drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-second drive at 640x360, 15 fps: video, NMEA and GPX logs, calibration."""
    out = tmp_path_factory.mktemp("short-drive") / "drive"
    options = DriveOptions(minutes=0.5, seed=5, fps=15.0, width_px=640, height_px=360)
    simulate_drive(grid_world, out, options)
    return out


@pytest.fixture(scope="session")
def processed_short_drive(short_drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spool `edge process` makes of the short drive: what live capture must equal."""
    spool = tmp_path_factory.mktemp("reference") / "spool"
    done = roadswarm(*process_args(short_drive, spool))
    assert done.returncode == 0, done.stderr
    return spool
