"""The real `roadswarm map` commands in subprocesses: import, save, match, and bad input."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mapbuilder.roads import read_network
from tests.integration.test_cli_errors import _run
from tests.map_fixtures import drive, walk

POINT_KEYS = {"index", "segment_id", "source_id", "direction", "offset_m", "distance_m"}


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _write_csv(path: Path, rows: list[tuple[float, float, float]]) -> Path:
    """A CSV track of (lon, lat, POSIX seconds) rows, times written as ISO 8601."""
    lines = ["lon,lat,time"]
    lines += [f"{lo},{la},{datetime.fromtimestamp(t, UTC).isoformat()}" for lo, la, t in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def track(
    grid_osm: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[str, str]]]:
    """A noise-free 1 Hz drive on the grid as CSV, and each fix's true (segment, direction)."""
    network = read_network(grid_osm)
    trip = drive(network, walk(network, 900.0, 2), noise_m=0.0)
    rows = list(zip(trip.lon.tolist(), trip.lat.tolist(), trip.time_s.tolist(), strict=True))
    path = _write_csv(tmp_path_factory.mktemp("track") / "drive.csv", rows)
    return path, trip.truth(network)


def test_import_save_and_match(
    grid_osm: Path, track: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    """`map roads import --out` saves the grid; `map match --json` against the saved network and
    against the OSM file itself gives the same points, nearly all on the true segments."""
    saved = tmp_path / "grid.geojson"
    summary = _json(
        _run(tmp_path, "map", "roads", "import", str(grid_osm), "--out", str(saved), "--json")
    )
    assert (summary["segments"], summary["nodes"], summary["one_way_segments"]) == (24, 16, 3)
    assert saved.is_file()
    path, truth = track
    answer = _json(
        _run(tmp_path, "map", "match", "--roads", str(saved), "--track", str(path), "--json")
    )
    points = answer["points"]
    assert len(points) == len(truth) and all(set(p) == POINT_KEYS for p in points)
    assert [p["index"] for p in points] == list(range(len(truth)))
    hits = sum((p["segment_id"], p["direction"]) == t for p, t in zip(points, truth, strict=True))
    assert hits >= 0.9 * len(truth)
    (sequence,) = answer["sequences"]
    (path_entry,) = sequence["paths"]
    assert {"segment_id", "source_id", "direction", "from_m", "to_m"} == set(
        path_entry["segments"][0]
    )
    direct = _json(
        _run(tmp_path, "map", "match", "--roads", str(grid_osm), "--track", str(path), "--json")
    )
    assert direct["points"] == points


def test_track_far_from_the_roads_is_unmatched(grid_osm: Path, tmp_path: Path) -> None:
    """A track 100 km away matches nothing: every point is null, and the command succeeds."""
    path = _write_csv(tmp_path / "far.csv", [(26.0, 61.0, 0.0), (26.001, 61.0, 1.0)])
    answer = _json(
        _run(tmp_path, "map", "match", "--roads", str(grid_osm), "--track", str(path), "--json")
    )
    assert answer["points"] == [None, None]
    assert answer["summary"]["matched"] == 0


@pytest.mark.parametrize("problem", ["no lines", "no road file", "empty track", "unsorted times"])
def test_bad_input_is_one_error_line_and_exit_2(
    grid_osm: Path, tmp_path: Path, problem: str
) -> None:
    """Bad road files and tracks are reported as one `error:` line saying what is wrong, exit 2."""
    roads, track_path = grid_osm, _write_csv(tmp_path / "ok.csv", [(24.94, 60.17, 0.0)])
    expected = {
        "no lines": "no road lines",
        "no road file": "does not exist",
        "empty track": "holds no points",
        "unsorted times": "time goes backwards at point 1",
    }[problem]
    if problem == "no lines":
        roads = tmp_path / "points.geojson"
        point = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [24.9, 60.1]},
            "properties": {},
        }
        roads.write_text(json.dumps({"type": "FeatureCollection", "features": [point]}))
    elif problem == "no road file":
        roads = tmp_path / "missing.osm.pbf"
    elif problem == "empty track":
        track_path = _write_csv(tmp_path / "empty.csv", [])
    else:
        track_path = _write_csv(
            tmp_path / "unsorted.csv", [(24.94, 60.17, 10.0), (24.941, 60.17, 5.0)]
        )
    result = _run(tmp_path, "map", "match", "--roads", str(roads), "--track", str(track_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert result.returncode == 2
