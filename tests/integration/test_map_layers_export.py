"""PMTiles snapshots of layers (read back with the pmtiles reader), the `map layers build` and
`map export` commands, corrupt tiles rebuilt, and the reward weights the coverage layer carries."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pytest
from minio import Minio
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from ingest.db import Catalog
from ingest.s3 import S3ObjectStore
from ingest.storage import LocalObjectStore
from mapbuilder.errors import CorruptTile, UnknownLayer
from mapbuilder.layers.build import build_dirty
from mapbuilder.layers.pmtiles_export import (
    EmptyLayerError,
    UnwritableExportError,
    export_pmtiles,
)
from mapbuilder.layers.stats import load_coverage
from mapbuilder.tiles.dirty import mark_corrupt
from mapbuilder.tiles.store import TileStore, tile_key
from rewards.bins import bin_layout
from rewards.inputs import load_segments
from rewards.settings import Region, RewardParams
from roadswarm.cli import main
from roadswarm.map_layers import build_layers, refresh_aged, reward_weights
from tests.integration.test_map_layers import NOW, START, captures
from tests.rewards_helpers import EPOCH, seed_catalog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def built(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[TileStore]:
    """Both layers built for the test captures into a folder store."""
    seed_catalog(sqlite_catalog, captures())
    store = LocalObjectStore(tmp_path / "store")
    build_layers(sqlite_catalog, store, now=NOW, everything=True)
    yield TileStore(store)


def _archive(
    path: Path,
) -> tuple[dict[str, object], dict[str, object], dict[tuple[int, ...], bytes]]:
    with path.open("rb") as handle:
        source = MmapSource(handle)
        reader = Reader(source)
        tiles = {tuple(zxy): data for zxy, data in all_tiles(source)}
        return dict(reader.header()), reader.metadata(), tiles


def test_export_round_trips_every_tile(built: TileStore, tmp_path: Path) -> None:
    """Every stored tile of each layer comes back from the archive byte for byte, with metadata."""
    for name, tile_type in (("coverage", TileType.MVT), ("freshness", TileType.PNG)):
        path = tmp_path / f"{name}.pmtiles"
        exported = export_pmtiles(built, name, path)
        header, meta, tiles = _archive(path)
        stored = {t: built.get(name, t) for t in built.list(name)}
        assert exported.tiles == len(stored) == len(tiles) > 0
        assert header["tile_type"] == tile_type
        for tile, found in stored.items():
            assert found is not None
            data = tiles[tile]
            if name == "coverage":
                assert header["tile_compression"] == Compression.GZIP
                data = gzip.decompress(data)
            assert data == found.data
        assert meta["format"] == ("pbf" if name == "coverage" else "png")
        assert (meta["minzoom"], meta["maxzoom"]) == (header["min_zoom"], header["max_zoom"])
        bounds = meta["bounds"]
        assert isinstance(bounds, list)
        assert bounds[0] < 24.94 < bounds[2] and bounds[1] < 60.17 < bounds[3]
    _, meta, tiles = _archive(tmp_path / "coverage.pmtiles")
    assert meta["vector_layers"][0]["id"] == "coverage"  # type: ignore[index]
    assert "captures" in meta["vector_layers"][0]["fields"]  # type: ignore[index]
    any_tile = gzip.decompress(next(iter(tiles.values())))
    assert "coverage" in mapbox_vector_tile.decode(any_tile)


def test_export_errors_leave_nothing(built: TileStore, tmp_path: Path) -> None:
    """Unknown layer, empty layer, unwritable target: a clear error and no file."""
    with pytest.raises(UnknownLayer, match="coverage, freshness, imagery"):
        export_pmtiles(built, "satellite", tmp_path / "x.pmtiles")
    with pytest.raises(EmptyLayerError, match="no tiles in the store"):
        export_pmtiles(built, "imagery", tmp_path / "x.pmtiles")
    with pytest.raises(UnwritableExportError, match="choose a writable folder"):
        export_pmtiles(built, "coverage", tmp_path / "missing" / "x.pmtiles")
    assert not list(tmp_path.glob("*.pmtiles")) and not (tmp_path / "missing").exists()


def test_corrupt_tile_fails_export_and_is_rebuilt(
    built: TileStore, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A damaged stored tile stops the export (the old archive stays) and the next build of the
    tile marked corrupt rewrites it."""
    path = tmp_path / "freshness.pmtiles"
    export_pmtiles(built, "freshness", path)
    before = path.read_bytes()
    tile = next(iter(built.list("freshness")))
    good = built.get("freshness", tile)
    assert good is not None
    damaged = tmp_path / "store" / tile_key("freshness", tile, "png")
    info = damaged.stat()
    with damaged.open("r+b") as handle:
        handle.seek(60)
        handle.write(b"\0\0\0\0")
    os.utime(damaged, ns=(info.st_atime_ns, info.st_mtime_ns))
    with pytest.raises(CorruptTile):
        export_pmtiles(built, "freshness", path)
    assert path.read_bytes() == before and len(list(tmp_path.glob(".*.tmp"))) == 0
    mark_corrupt(sqlite_catalog, "freshness", tile)
    result = build_dirty(
        sqlite_catalog,
        built,
        weights=reward_weights(RewardParams()),
        now=NOW,
        layers=["freshness"],
    )
    assert result.written == {"freshness": 1}
    repaired = built.get("freshness", tile)
    assert repaired is not None and repaired.data == good.data


def test_reward_weights_agree_with_the_rewards(sqlite_catalog: Catalog) -> None:
    """A segment's weight is the sum of its bins' weights in the rewards' own layout."""
    seed_catalog(sqlite_catalog, captures())
    params = RewardParams(
        regions=(Region(name="centre", bbox_lonlat=(24.9, 60.1705, 25.0, 60.18), multiplier=2.0),)
    )
    segments = load_coverage(sqlite_catalog)
    weights = reward_weights(params)(segments)
    with sqlite_catalog.session() as session:
        table = load_segments(session)
    layout = bin_layout(table, params, EPOCH)
    for segment, weight in zip(segments, weights, strict=True):
        code = table.index()[segment.segment_id]
        count = int(layout.count[code])
        expected = layout.bin_weight(np.full(count, code), np.arange(count)).sum()
        assert weight == pytest.approx(expected)
    assert weights[1] == pytest.approx(45 * 0.8 * 2.0)  # seg-b: residential, inside "centre"


def _in_process(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in this process: exit status, stdout, stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_commands_build_and_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`map layers build --all` (a real process) then `map export` write an archive; errors
    exit with their reason and status."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    catalog = Catalog.connect(url)
    seed_catalog(catalog, captures(), now=NOW - timedelta(days=40))
    catalog.dispose()
    env = {"ROADSWARM_DATABASE_URL": url, "ROADSWARM_STORE_DIR": str(tmp_path / "s")}
    done = subprocess.run(
        [sys.executable, "-m", "roadswarm", "map", "layers", "build", "--all", "--json"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["written"]["coverage"] > 0 and summary["written"]["freshness"] > 0
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, _ = _in_process("map", "layers", "build", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["written"] == {"coverage": 0, "freshness": 0}
    target = tmp_path / "coverage.pmtiles"
    code, out, err = _in_process(
        "map", "export", "--layer", "coverage", "--pmtiles", str(target), capsys=capsys
    )
    assert code == 0, err
    assert "coverage tiles" in out and target.read_bytes()[:7] == b"PMTiles"
    failures = {
        ("nope", target): (2, "unknown tile layer 'nope'"),
        ("imagery", target): (2, "no tiles in the store"),
        ("coverage", tmp_path / "no" / "x.pmtiles"): (3, "choose a writable folder"),
    }
    for (name, path), (status, reason) in failures.items():
        code, _, err = _in_process(
            "map", "export", "--layer", name, "--pmtiles", str(path), capsys=capsys
        )
        assert code == status and reason in err, err


def test_refresh_recolours_only_aged_segments(built: TileStore, sqlite_catalog: Catalog) -> None:
    """A week on, the hourly refresh rewrites the freshness tiles of the segments that aged
    past 7 days, and only those."""
    later = START + timedelta(days=7, minutes=3)
    result = refresh_aged(sqlite_catalog, built.store, now=later, window=timedelta(hours=2))
    assert result.marked["freshness"] > 0
    assert 0 < result.written["freshness"] <= result.marked["freshness"]
    assert result.written["coverage"] == 0  # coverage does not change with time
    quiet = refresh_aged(
        sqlite_catalog, built.store, now=later + timedelta(days=1), window=timedelta(hours=2)
    )
    assert quiet.marked == {} and quiet.written == {"coverage": 0, "freshness": 0}


def test_layers_build_and_export_on_the_s3_store(
    sqlite_catalog: Catalog, s3_endpoint: str, tmp_path: Path
) -> None:
    """Through the S3 store (moto): the same tiles as on disk, and an archive of them."""
    seed_catalog(sqlite_catalog, captures())
    client = Minio(
        s3_endpoint, access_key="test", secret_key="test", secure=False, region="us-east-1"
    )
    s3 = S3ObjectStore(client, "layers-export")
    local = LocalObjectStore(tmp_path / "store")
    for store in (s3, local):
        build_layers(sqlite_catalog, store, now=NOW, everything=True)
    for name in ("coverage", "freshness"):
        on_s3, on_disk = TileStore(s3), TileStore(local)
        assert list(on_s3.list(name)) == list(on_disk.list(name))
        exported = export_pmtiles(on_s3, name, tmp_path / f"{name}.pmtiles")
        _, _, tiles = _archive(exported.path)
        assert len(tiles) == exported.tiles == len(list(on_disk.list(name)))
