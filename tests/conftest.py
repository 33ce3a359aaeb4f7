"""Fixtures shared by every suite: small OSM extracts and worlds built from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from ingest.db import Catalog
from roadswarm.sim.world import World, build_world
from tests.ingest_helpers import Harness, catalog_at, served_api
from tests.integration.edge_drive import process_args, roadswarm
from tests.osm_fixtures import write_grid_osm
from tests.tile_helpers import simulated


@pytest.fixture(scope="session")
def grid_osm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 x 3 block street grid as an .osm.pbf file."""
    return write_grid_osm(tmp_path_factory.mktemp("osm") / "grid.osm.pbf")


@pytest.fixture(scope="session")
def grid_world(tmp_path_factory: pytest.TempPathFactory, grid_osm: Path) -> World:
    """A world built from the grid extract (orthophoto rendered on first use)."""
    return build_world(grid_osm, tmp_path_factory.mktemp("world") / "grid", seed=3)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """A migrated, empty catalog on SQLite and on a fresh PostgreSQL database."""
    with catalog_at(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A migrated, empty SQLite catalog (for tests where the database makes no difference)."""
    with catalog_at("sqlite", tmp_path) as opened:
        yield opened


@pytest.fixture
def api(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[Harness]:
    """The ingest API served on loopback over a SQLite catalog and a local store."""
    with served_api(sqlite_catalog, tmp_path / "store") as harness:
        yield harness


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """`host:port` of a moto S3 server on a free loopback port (it checks no signatures,
    policies or checksums: our code must)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def short_drive(grid_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-second drive at 640x360, 15 fps: video, NMEA and GPX logs, calibration."""
    folder = tmp_path_factory.mktemp("short-drive")
    return simulated(grid_world, folder, minutes=0.5, seed=5, fps=15.0, width_px=640, height_px=360)


@pytest.fixture(scope="session")
def processed_short_drive(short_drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spool `edge process` makes of the short drive: what live capture must equal."""
    spool = tmp_path_factory.mktemp("reference") / "spool"
    done = roadswarm(*process_args(short_drive, spool))
    assert done.returncode == 0, done.stderr
    return spool
