"""Fixtures shared by every suite: small OSM extracts and worlds built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadswarm.sim.world import World, build_world
from tests.osm_fixtures import write_grid_osm


@pytest.fixture(scope="session")
def grid_osm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 x 3 block street grid as an .osm.pbf file."""
    return write_grid_osm(tmp_path_factory.mktemp("osm") / "grid.osm.pbf")


@pytest.fixture(scope="session")
def grid_world(tmp_path_factory: pytest.TempPathFactory, grid_osm: Path) -> World:
    """A world built from the grid extract (orthophoto rendered on first use)."""
    return build_world(grid_osm, tmp_path_factory.mktemp("world") / "grid", seed=3)
