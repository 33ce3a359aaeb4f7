"""Tests of the GNSS log readers: GPX and NMEA files to fixes, and bad records kept as values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pynmea2
import pytest

from edge.gnss.fix import Fix, FixQuality
from edge.gnss.gpx import read_gpx
from edge.gnss.log import GnssFileError, GnssLog, check_sequence
from edge.gnss.nmea import read_nmea
from roadswarm.sim.geo import FloatArray, LocalFrame
from roadswarm.sim.gnss import GnssFix, GnssOptions, simulate_fixes, write_gpx, write_nmea

HELSINKI = LocalFrame(24.94, 60.17)
START = datetime(2024, 5, 17, 23, 59, 55, tzinfo=UTC)  # crosses midnight: the date must follow
MPS_PER_KNOT = 1852.0 / 3600.0
Lines = list[bytes]


@pytest.fixture
def sim() -> list[GnssFix]:
    """Ten seconds of a 10 Hz receiver on a car driving north-east at 12 m/s."""
    t = np.arange(0.0, 10.0 + 1e-9, 1.0 / 30.0)
    x, y = 8.0 * t, 9.0 * t
    speed, heading = np.full_like(t, 12.0), np.full_like(t, 41.6)
    options, rng = GnssOptions(rate_hz=10.0), np.random.default_rng(7)
    z = 20.0 + 0.1 * t
    return simulate_fixes(
        t, x, y, z, speed, heading, frame=HELSINKI, start_time=START, options=options, rng=rng
    )


@pytest.fixture
def nmea_lines(sim: list[GnssFix], tmp_path: Path) -> Lines:
    """The simulated log as NMEA lines: an RMC then a GGA per epoch."""
    write_nmea(sim, tmp_path / "sim.nmea")
    return (tmp_path / "sim.nmea").read_bytes().split(b"\r\n")[:-1]


def _write_lines(path: Path, lines: Lines) -> Path:
    """Write NMEA lines CRLF-terminated."""
    path.write_bytes(b"".join(line + b"\r\n" for line in lines))
    return path


def _column(records: Sequence[Fix | GnssFix], name: str) -> FloatArray:
    """One field of every record as floats, None as NaN so that it never compares close."""
    return np.array([getattr(r, name) for r in records], dtype=np.float64)


def _assert_same(read: list[Fix], sim: list[GnssFix]) -> None:
    """The fixes read back carry the simulated times, positions, HDOP and satellites."""
    assert [f.time for f in read] == [s.time for s in sim]
    assert np.allclose([f.lat for f in read], [s.lat for s in sim], rtol=0.0, atol=1e-6)
    assert np.allclose([f.lon for f in read], [s.lon for s in sim], rtol=0.0, atol=1e-6)
    assert [f.hdop for f in read] == [s.hdop for s in sim]
    assert [f.satellites for f in read] == [s.satellites for s in sim]
    assert all(f.fix_mode == 3 for f in read)


def test_gpx_round_trip(sim: list[GnssFix], tmp_path: Path) -> None:
    """A simulated GPX log reads back fix for fix, with elevation and no bad records."""
    write_gpx(sim, tmp_path / "sim.gpx", name="drive")
    log = read_gpx(tmp_path / "sim.gpx")
    assert log.bad == []
    _assert_same(log.fixes, sim)
    assert np.allclose(_column(log.fixes, "altitude_m"), _column(sim, "altitude_m"), atol=1e-6)


def test_nmea_round_trip(sim: list[GnssFix], tmp_path: Path) -> None:
    """A simulated NMEA log reads back fix for fix, speed in m/s and course to the centidegree."""
    write_nmea(sim, tmp_path / "sim.nmea")
    log = read_nmea(tmp_path / "sim.nmea")
    assert log.bad == []
    _assert_same(log.fixes, sim)
    speeds = _column(log.fixes, "speed_mps")
    assert np.allclose(speeds, _column(sim, "speed_mps"), rtol=0.0, atol=0.05)
    course = _column(log.fixes, "course_deg") - _column(sim, "course_deg")
    assert np.all(np.abs((course + 180.0) % 360.0 - 180.0) <= 0.01)
    assert np.allclose(_column(log.fixes, "altitude_m"), _column(sim, "altitude_m"), atol=0.01)


def _edited(line: bytes, **fields: str) -> bytes:
    """The sentence with some fields changed and its checksum recomputed."""
    sentence = pynmea2.parse(line.decode("ascii"))
    for name, value in fields.items():
        setattr(sentence, name, value)
    return str(sentence).encode("ascii")


def _talker(line: bytes, talker: str) -> bytes:
    """The sentence from another talker, with its checksum recomputed."""
    sentence = pynmea2.parse(line.decode("ascii"))
    sentence.talker = talker
    return str(sentence).encode("ascii")


def _bad_checksum(lines: Lines) -> None:
    """Give the 4th epoch's GGA (line 8) a checksum that does not match."""
    lines[7] = lines[7][:-2] + (b"11" if lines[7].endswith(b"00") else b"00")


def _garbage(lines: Lines) -> None:
    """Insert a line of noise as line 5."""
    lines.insert(4, b"@@ garbage from the serial port @@")


def _not_utf8(lines: Lines) -> None:
    """Insert a line of bytes that are not UTF-8 as line 5."""
    lines.insert(4, b"$GPRMC,\xff\xfe\x80,A*00")


def _status_void(lines: Lines) -> None:
    """Mark the 3rd epoch's RMC (line 5) as void."""
    lines[4] = _edited(lines[4], status="V")


def _quality_zero(lines: Lines) -> None:
    """Set the 3rd epoch's GGA quality (line 6) to 0."""
    lines[5] = _edited(lines[5], gps_qual="0")


def _backwards(lines: Lines) -> None:
    """Repeat the 2nd epoch's RMC after the 6th epoch, as line 13."""
    lines.insert(12, lines[2])


FAULTS: list[tuple[Callable[[Lines], None], str, str, int]] = [
    (_bad_checksum, "line 8", "checksum does not match", 0),
    (_garbage, "line 5", "not a valid NMEA sentence", 0),
    (_not_utf8, "line 5", "non-ASCII", 0),
    (_status_void, "line 5", "receiver reported no fix (RMC status V)", 1),
    (_quality_zero, "line 6", "receiver reported no fix (GGA quality 0)", 1),
    (_backwards, "line 13", "time goes backwards from 2024-05-17T23:59:55.500000+00:00 to", 0),
]


@pytest.mark.parametrize(("fault", "location", "reason", "lost"), FAULTS)
def test_nmea_fault_is_one_bad_record(
    fault: Callable[[Lines], None],
    location: str,
    reason: str,
    lost: int,
    nmea_lines: Lines,
    sim: list[GnssFix],
    tmp_path: Path,
) -> None:
    """Each damaged line becomes exactly one bad record, and every other epoch is still a fix."""
    fault(nmea_lines)
    log = read_nmea(_write_lines(tmp_path / "bad.nmea", nmea_lines))
    assert [(b.location, reason in b.reason) for b in log.bad] == [(location, True)], log.bad
    assert log.bad[0].source == str(tmp_path / "bad.nmea")
    assert len(log.fixes) == len(sim) - lost
    kept = {f.time for f in log.fixes}
    assert [s for s in sim if s.time in kept] == sim[:2] + sim[2 + lost :]


def test_nmea_epoch_missing_one_sentence_keeps_the_other(
    nmea_lines: Lines, sim: list[GnssFix], tmp_path: Path
) -> None:
    """An epoch whose GGA is unreadable is still a fix from its RMC, without GGA's fields."""
    _bad_checksum(nmea_lines)
    fix = read_nmea(_write_lines(tmp_path / "bad.nmea", nmea_lines)).fixes[3]
    assert fix.time == sim[3].time and fix.speed_mps is not None
    assert (fix.hdop, fix.satellites, fix.altitude_m, fix.fix_mode) == (None, None, None, None)


def test_nmea_gsa_2d_gives_a_2d_fix(nmea_lines: Lines, tmp_path: Path) -> None:
    """A GNGSA with mode 2 makes its epoch a 2D fix, which FixQuality then rejects."""
    gsa = pynmea2.GSA("GN", "GSA", ("A", "2", "05", "12", "", "", "", "", "", "", "", "", "", ""))
    gsa.data += ["2.1", "1.2", "1.7"]
    lines = [*nmea_lines[:2], str(gsa).encode("ascii"), *nmea_lines[2:4]]
    fixes = read_nmea(_write_lines(tmp_path / "gsa.nmea", lines)).fixes
    assert [f.fix_mode for f in fixes] == [2, 3]
    assert FixQuality().problem(fixes[0]) == "2D fix"


def test_nmea_gn_talker_and_gga_before_rmc(nmea_lines: Lines, tmp_path: Path) -> None:
    """GN sentences are read, and a GGA ahead of its RMC still merges into one fix."""
    lines = [_talker(nmea_lines[i], "GN") for i in (1, 0, 3, 2)]
    log = read_nmea(_write_lines(tmp_path / "gn.nmea", lines))
    assert log.bad == [] and len(log.fixes) == 2
    assert all(f.speed_mps is not None and f.hdop is not None for f in log.fixes)


def test_nmea_without_any_fix_is_not_an_error(nmea_lines: Lines, tmp_path: Path) -> None:
    """A log of GGA sentences with no RMC for their date gives no fixes and one record each."""
    log = read_nmea(_write_lines(tmp_path / "gga.nmea", nmea_lines[1:4:2]))
    assert log.fixes == []
    assert [b.location for b in log.bad] == ["line 1", "line 2"]
    assert all("no RMC sentence" in b.reason for b in log.bad)


def _gpx(*segments: list[str]) -> str:
    """A GPX 1.1 document of one track per list of <trkpt> elements."""
    tracks = "".join(f"<trk><trkseg>{''.join(points)}</trkseg></trk>" for points in segments)
    ns = "http://www.topografix.com/GPX/1/1"
    return f'<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="{ns}">{tracks}</gpx>'


def _point(second: int | None, lat: str = "60.17", lon: str = "24.94") -> str:
    """A track point at a second past midnight (no <time> for None), 3D with 9 satellites."""
    time = "" if second is None else f"<time>2024-05-18T00:00:{second:02d}Z</time>"
    return f'<trkpt lat="{lat}" lon="{lon}"><ele>21.5</ele>{time}<fix>3d</fix><sat>9</sat></trkpt>'


def test_gpx_bad_points_become_bad_records(tmp_path: Path) -> None:
    """NaN, out-of-range, timeless and backwards points are recorded, the rest kept."""
    first = [_point(0), _point(1, lat="NaN"), _point(2, lon="180.5"), _point(None), _point(3)]
    second = [_point(2), _point(4, lat="-60.2", lon="-180")]
    (tmp_path / "bad.gpx").write_text(_gpx(first, second))
    log = read_gpx(tmp_path / "bad.gpx")
    assert [(f.time.second, f.lat, f.lon) for f in log.fixes] == [
        (0, 60.17, 24.94), (3, 60.17, 24.94), (4, -60.2, -180.0)
    ]  # fmt: skip
    assert {(f.altitude_m, f.satellites, f.fix_mode) for f in log.fixes} == {(21.5, 9, 3)}
    assert [(b.location, b.reason.split(" (")[0]) for b in log.bad] == [
        ("track 0 segment 0 point 1", "position is not a number"),
        ("track 0 segment 0 point 2", "position out of range"),
        ("track 0 segment 0 point 3", "no time"),
        ("track 1 segment 0 point 0", "time goes backwards from 2024-05-18T00:00:03+00:00 to 2024-05-18T00:00:02+00:00"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "why"),
    [("<html><body/></html>", "root element is <html>"), ("time,lat,lon\n", "syntax error")],
)
def test_not_a_gpx_file_raises(content: str, why: str, tmp_path: Path) -> None:
    """A file that is not GPX is a fatal error that says what to pass instead."""
    (tmp_path / "x.gpx").write_text(content)
    with pytest.raises(GnssFileError, match="is not a GPX file") as raised:
        read_gpx(tmp_path / "x.gpx")
    assert why in str(raised.value) and "pass a GPX 1.0/1.1 track" in str(raised.value)


@pytest.mark.parametrize("reader", [read_gpx, read_nmea])
def test_missing_file_raises(reader: Callable[[Path], GnssLog], tmp_path: Path) -> None:
    """A log that does not exist is a fatal error naming the path."""
    with pytest.raises(GnssFileError, match=r"log .*nope\.log does not exist"):
        reader(tmp_path / "nope.log")


def test_check_sequence_reports_repeated_time() -> None:
    """A fix at the same time as the last kept one is reported, not merged or reordered."""
    t = datetime(2024, 1, 1, tzinfo=UTC)
    fixes = [Fix(t, 1.0, 2.0), Fix(t, 1.5, 2.5), Fix(t + timedelta(seconds=1), 1.0, 2.0)]
    log = check_sequence(fixes, "mem")
    assert log.fixes == [fixes[0], fixes[2]]
    assert [(b.location, b.reason) for b in log.bad] == [("fix 1", f"time repeats {t.isoformat()}")]
