"""The corpus's edge inputs: damaged NMEA lines and GPX points mixed into good logs cost only
themselves (each a bad record with its reason, every good fix kept); files a command cannot use
stop it with one line saying what is wrong, before anything is loaded or written; a video that
stops decoding half way keeps the keyframes before the damage and records the rest."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.gnss.gpx import read_gpx
from edge.gnss.log import GnssLog
from edge.gnss.nmea import read_nmea
from roadswarm.cli import main
from tests.integration.edge_drive import process_args, records, roadswarm
from tests.reliability.bad_corpus import BadCase, ids
from tests.reliability.bad_files import CLI_FILE_CASES, EDGE_FILE_CASES, GPX_AS_FILES
from tests.reliability.bad_gnss import (
    GOOD_FIXES,
    GPX_POINT_CASES,
    NMEA_CASES,
    START,
    gpx_with_bad_points,
    nmea_log,
)


@pytest.fixture(scope="module")
def nmea_read(tmp_path_factory: pytest.TempPathFactory) -> GnssLog:
    """The good NMEA log with every damaged line of the corpus in it, read once."""
    path = tmp_path_factory.mktemp("nmea") / "drive.nmea"
    path.write_bytes(nmea_log(NMEA_CASES))
    return read_nmea(path)


@pytest.fixture(scope="module")
def gpx_read(tmp_path_factory: pytest.TempPathFactory) -> GnssLog:
    """The good GPX track with every bad point of the corpus in it, read once."""
    path = tmp_path_factory.mktemp("gpx") / "drive.gpx"
    path.write_bytes(gpx_with_bad_points(GPX_POINT_CASES))
    return read_gpx(path)


@pytest.mark.parametrize("log_name", ["nmea_read", "gpx_read"])
def test_every_good_fix_survives_the_bad_ones(
    log_name: str, request: pytest.FixtureRequest
) -> None:
    """The log's good fixes are all read, one a second, whatever was mixed in between them."""
    log: GnssLog = request.getfixturevalue(log_name)
    assert [(fix.time - START).total_seconds() for fix in log.fixes] == list(range(GOOD_FIXES))


@pytest.mark.parametrize("case", NMEA_CASES, ids=ids(NMEA_CASES))
def test_a_damaged_nmea_line_is_a_bad_record(case: BadCase, nmea_read: GnssLog) -> None:
    """The line is a bad record whose reason says what is wrong with it."""
    reasons = [record.reason for record in nmea_read.bad]
    assert len(reasons) == len(NMEA_CASES)
    assert any(case.says in reason for reason in reasons), reasons


@pytest.mark.parametrize("case", GPX_POINT_CASES, ids=ids(GPX_POINT_CASES))
def test_a_bad_gpx_point_is_a_bad_record(case: BadCase, gpx_read: GnssLog) -> None:
    """The point is a bad record, located in the file, whose reason says what is wrong."""
    found = [record for record in gpx_read.bad if case.says in record.reason]
    assert len(gpx_read.bad) == len(GPX_POINT_CASES)
    assert found and found[0].location.startswith("track 0 segment 0 point")


@contextlib.contextmanager
def _root_logging_kept() -> Iterator[None]:
    """The CLI configures the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_cli(args: list[str]) -> tuple[int, str]:
    """The command's exit status and what it wrote on stderr, run in this process."""
    errors = io.StringIO()
    with _root_logging_kept(), contextlib.redirect_stderr(errors):
        try:
            main(args)
        except SystemExit as stop:
            return int(stop.code or 0), errors.getvalue()
    return 0, errors.getvalue()


FILE_CASES = [*EDGE_FILE_CASES, *GPX_AS_FILES, *CLI_FILE_CASES]


@pytest.mark.parametrize("case", FILE_CASES, ids=ids(FILE_CASES))
def test_a_file_a_command_cannot_use_stops_it_cleanly(
    case: BadCase, short_drive: Path, tmp_path: Path
) -> None:
    """One line on stderr says what is wrong; the exit status is not 0; nothing was written."""
    status, stderr = run_cli(case.make(tmp_path, short_drive))
    assert status != 0, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert case.says in stderr, stderr
    assert not (tmp_path / "spool").exists() and not (tmp_path / "net.geojson").exists()


def _zero_middle(video: Path, into: Path) -> Path:
    """A copy of the video with 200 kB of its middle overwritten, named as the original (so the
    sequence, and with it every frame id, is the same)."""
    data = bytearray(video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200_000] = bytes(200_000)
    into.mkdir()
    for name in ("track.nmea", "calibration.json"):
        shutil.copy(video.parent / name, into / name)
    (into / "video.mp4").write_bytes(bytes(data))
    return into


def test_a_video_damaged_half_way_keeps_what_came_before(
    short_drive: Path, processed_short_drive: Path, tmp_path: Path
) -> None:
    """The keyframes before the damage are exactly those of the intact video; the ones after it
    are counted in the report and recorded as an event in the spool, not silently missing."""
    drive = _zero_middle(short_drive / "video.mp4", tmp_path / "drive")
    done = roadswarm(*process_args(drive, tmp_path / "spool"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    lost = report["skipped"]["video unreadable from here on (damaged or cut short)"]
    kept, reference = records(tmp_path / "spool"), records(processed_short_drive)
    assert kept and lost > 0 and len(kept) + lost == len(reference)
    last_kept = max(record["source_frame"] for record in kept.values())
    expected = [r for r in reference.values() if r["source_frame"] <= last_kept]
    # The frame decoded last may be rebuilt by the decoder from data the damage reached (its
    # references lie past it), so only its place in the plan is the intact video's; every
    # keyframe before it is byte for byte the same.
    by_frame = sorted(kept.values(), key=lambda r: r["source_frame"])
    expected.sort(key=lambda r: r["source_frame"])
    assert by_frame[:-1] == expected[:-1]
    plan_fields = ("index", "source_frame", "capture_time", "travelled_m", "lat", "lon")
    assert [by_frame[-1][f] for f in plan_fields] == [expected[-1][f] for f in plan_fields]
    with sqlite3.connect(tmp_path / "spool" / "spool.sqlite3") as db:
        events = db.execute("SELECT message FROM events WHERE kind = 'video_damaged'").fetchall()
    assert len(events) == 1 and f"{lost} keyframes not taken" in events[0][0]
