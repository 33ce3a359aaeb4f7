"""The real `roadswarm sim` commands: user errors are one `error:` line and an exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roadswarm.errors import OutputError, UserInputError
from roadswarm.sim.world import World
from tests.osm_fixtures import write_grid_osm

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 60
GRID_SEGMENTS = 24


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m roadswarm ARGS` from the repository root, its cache in a temporary folder."""
    env = {**os.environ, "ROADSWARM_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "roadswarm", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _assert_user_error(
    result: subprocess.CompletedProcess[str], exit_code: int, *names: str
) -> None:
    """The command failed with `exit_code` and one `error:` line on stderr naming the problem."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0]
    assert result.returncode == exit_code


@pytest.fixture
def blocked_dir(tmp_path: Path) -> Path:
    """A folder path that cannot be created: its parent is a regular file (root ignores chmod)."""
    parent = tmp_path / "a-file"
    parent.write_text("not a folder")
    return parent / "out"


@pytest.fixture
def world_dir(grid_world: World, tmp_path: Path) -> Path:
    """A copy of the grid world's metadata and roads, free to damage."""
    root = tmp_path / "world"
    root.mkdir()
    for name in ("world.json", "roads.geojson"):
        shutil.copy(grid_world.root / name, root / name)
    return root


def test_world_from_grid_prints_json(grid_osm: Path, tmp_path: Path) -> None:
    """`sim world --json` on the grid exits 0 and reports 24 segments and the world folder."""
    out = tmp_path / "world"
    result = _run(tmp_path, "sim", "world", "--osm", str(grid_osm), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["segment_count"] == GRID_SEGMENTS
    assert summary["world"] == str(out)
    assert (out / "world.json").is_file()
    assert World.load(out).meta.segment_count == GRID_SEGMENTS


def test_missing_osm_file(tmp_path: Path) -> None:
    """A missing extract is a user error naming the path."""
    missing = tmp_path / "nowhere.osm.pbf"
    result = _run(tmp_path, "sim", "world", "--osm", str(missing), "--out", str(tmp_path / "w"))
    _assert_user_error(result, UserInputError.exit_code, str(missing), "does not exist")
    assert not (tmp_path / "w").exists()


def test_extract_without_roads(tmp_path: Path) -> None:
    """An extract with no drivable roads is a user error saying so."""
    osm = write_grid_osm(tmp_path / "paths.osm.pbf", with_roads=False)
    result = _run(tmp_path, "sim", "world", "--osm", str(osm), "--out", str(tmp_path / "w"))
    _assert_user_error(result, UserInputError.exit_code, str(osm), "no drivable roads")


def test_world_out_unwritable(grid_osm: Path, blocked_dir: Path, tmp_path: Path) -> None:
    """`sim world --out` under a regular file is an output error naming the folder."""
    result = _run(tmp_path, "sim", "world", "--osm", str(grid_osm), "--out", str(blocked_dir))
    _assert_user_error(result, OutputError.exit_code, str(blocked_dir), "cannot write")


@pytest.mark.parametrize(
    ("bbox", "says"),
    [
        ("24.9,60.1,25.0", "not four numbers"),
        ("west,south,east,north", "not four numbers"),
        ("25.0,60.1,24.9,60.2", "not a valid box"),
        ("24.9,91,25.0,92", "not a valid box"),
    ],
)
def test_bad_bbox(grid_osm: Path, tmp_path: Path, bbox: str, says: str) -> None:
    """A malformed or inverted --bbox is a user error quoting it."""
    out = tmp_path / "w"
    result = _run(
        tmp_path, "sim", "world", "--osm", str(grid_osm), "--out", str(out), "--bbox", bbox
    )
    _assert_user_error(result, UserInputError.exit_code, "--bbox", repr(bbox), says)
    assert not out.exists()


def test_drive_world_of_future_version(world_dir: Path, tmp_path: Path) -> None:
    """`sim drive` on a world written by a newer format is a user error saying to rebuild."""
    meta = json.loads((world_dir / "world.json").read_text())
    meta["format_version"] = 999
    (world_dir / "world.json").write_text(json.dumps(meta))
    result = _run(tmp_path, "sim", "drive", "--world", str(world_dir), "--out", str(tmp_path / "d"))
    _assert_user_error(result, UserInputError.exit_code, "version 999", "roadswarm sim world")
    assert not (tmp_path / "d").exists()


def test_drive_without_world(tmp_path: Path) -> None:
    """`sim drive` on a folder that is not a world is a user error naming it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(tmp_path, "sim", "drive", "--world", str(empty), "--out", str(tmp_path / "d"))
    _assert_user_error(result, UserInputError.exit_code, str(empty), "no world.json")


def test_drive_world_missing_a_field(world_dir: Path, tmp_path: Path) -> None:
    """`sim drive` on a world.json that lacks a field is a user error, not a traceback."""
    meta = json.loads((world_dir / "world.json").read_text())
    del meta["bounds_m"]
    (world_dir / "world.json").write_text(json.dumps(meta))
    result = _run(tmp_path, "sim", "drive", "--world", str(world_dir), "--out", str(tmp_path / "d"))
    _assert_user_error(result, UserInputError.exit_code, "damaged", "roadswarm sim world")


def test_drive_out_unwritable(grid_world: World, blocked_dir: Path, tmp_path: Path) -> None:
    """`sim drive --out` under a regular file fails before rendering, naming the folder."""
    result = _run(
        tmp_path, "sim", "drive", "--world", str(grid_world.root), "--out", str(blocked_dir)
    )
    _assert_user_error(result, OutputError.exit_code, str(blocked_dir), "cannot write")


@pytest.mark.parametrize(
    ("resolution", "says"),
    [
        ("wide", "not WIDTHxHEIGHT"),
        ("1920x1080x2", "not WIDTHxHEIGHT"),
        ("1921x1080", "must be even"),
        ("32x32", "must be even, 64-7680"),
        ("8000x1080", "must be even, 64-7680"),
    ],
)
def test_bad_resolution(grid_world: World, tmp_path: Path, resolution: str, says: str) -> None:
    """A malformed or out-of-range --resolution is a user error quoting it; nothing is written."""
    out = tmp_path / "d"
    result = _run(
        tmp_path,
        "sim",
        "drive",
        "--world",
        str(grid_world.root),
        "--out",
        str(out),
        "--resolution",
        resolution,
    )
    _assert_user_error(result, UserInputError.exit_code, "--resolution", resolution, says)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("sim", "drive", "--world", "w"), ("--out", "roadswarm sim drive --help")),
        (("sim", "drive", "--world", "w", "--out", "d", "--minutes", "1000"), ("--minutes",)),
        (("no-such-command",), ("no-such-command", "roadswarm --help")),
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, args: tuple[str, ...], names: tuple[str, ...]
) -> None:
    """A missing option, a value out of range or an unknown command is one line naming the fix."""
    _assert_user_error(_run(tmp_path, *args), 2, *names)
