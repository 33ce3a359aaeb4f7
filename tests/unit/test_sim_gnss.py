"""Tests of the simulated GNSS receiver and its GPX and NMEA logs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gpxpy
import numpy as np
import pynmea2
import pytest

from roadswarm.errors import OutputError, UserInputError
from roadswarm.sim.geo import FloatArray, LocalFrame
from roadswarm.sim.gnss import GnssFix, GnssOptions, simulate_fixes, write_gpx, write_nmea

HELSINKI = LocalFrame(24.94, 60.17)
RIO = LocalFrame(-43.18, -22.91)  # southern and western hemispheres
START = datetime(2024, 5, 17, 23, 58, 30, tzinfo=UTC)  # crosses midnight during the drive
DURATION_S = 120.0
FPS = 30.0


@dataclass(frozen=True)
class Truth:
    """A true trajectory sampled at the video frame rate."""

    times_s: FloatArray
    x_m: FloatArray
    y_m: FloatArray
    z_m: FloatArray
    speed_mps: FloatArray
    heading_deg: FloatArray


def _drive() -> Truth:
    """Stand still for 5 s, drive north-north-west at 12 m/s, then turn right through north."""
    t = np.arange(0.0, DURATION_S * FPS + 1.0) / FPS
    speed = np.where(t < 5.0, 0.0, 12.0)
    heading = (340.0 + np.clip(t - 60.0, 0.0, None) * 1.5) % 360.0
    step = speed / FPS
    x = np.concatenate(([0.0], np.cumsum(step * np.sin(np.radians(heading)))[:-1]))
    y = np.concatenate(([0.0], np.cumsum(step * np.cos(np.radians(heading)))[:-1]))
    return Truth(t, x, y, 20.0 + 0.01 * y, speed, heading)


def _simulate(
    truth: Truth,
    *,
    frame: LocalFrame = HELSINKI,
    options: GnssOptions | None = None,
    seed: int = 42,
) -> list[GnssFix]:
    """Run the receiver over a truth with a seeded generator."""
    return simulate_fixes(
        truth.times_s,
        truth.x_m,
        truth.y_m,
        truth.z_m,
        truth.speed_mps,
        truth.heading_deg,
        frame=frame,
        start_time=START,
        options=options or GnssOptions(),
        rng=np.random.default_rng(seed),
    )


@pytest.fixture
def truth() -> Truth:
    """The standing-then-turning drive near Helsinki."""
    return _drive()


@pytest.fixture
def fixes(truth: Truth) -> list[GnssFix]:
    """The drive as seen by a 10 Hz receiver."""
    return _simulate(truth, options=GnssOptions(rate_hz=10.0))


@pytest.mark.parametrize("rate_hz", [1.0, 10.0])
def test_fix_count_and_times_follow_the_rate(truth: Truth, rate_hz: float) -> None:
    """One fix per 1/rate seconds over the whole drive, ends included, in UTC."""
    fixes = _simulate(truth, options=GnssOptions(rate_hz=rate_hz))
    assert len(fixes) == round(DURATION_S * rate_hz) + 1
    offsets = np.array([(fix.time - START).total_seconds() for fix in fixes])
    np.testing.assert_allclose(offsets, np.arange(len(fixes)) / rate_hz, atol=1e-6)
    assert all(fix.time.utcoffset() == timedelta(0) for fix in fixes)


def test_fields_stay_in_receiver_ranges(fixes: list[GnssFix]) -> None:
    """Speed is never negative, course is in [0, 360), HDOP, satellites and quality plausible."""
    assert all(fix.speed_mps >= 0.0 for fix in fixes)
    assert all(0.0 <= fix.course_deg < 360.0 for fix in fixes)
    assert all(0.8 <= fix.hdop <= 1.5 for fix in fixes)
    assert all(8 <= fix.satellites <= 14 for fix in fixes)
    assert all(fix.fix_quality == 1 for fix in fixes)


def test_course_follows_true_heading_and_holds_when_stopped(
    truth: Truth, fixes: list[GnssFix]
) -> None:
    """Course tracks the true heading through the 0/360 wrap and does not wander while standing."""
    stopped = [fix.course_deg for fix in fixes if (fix.time - START).total_seconds() < 4.5]
    assert len(set(stopped)) == 1
    for fix in fixes[60::50]:
        t = (fix.time - START).total_seconds()
        heading = (340.0 + max(t - 60.0, 0.0) * 1.5) % 360.0
        x = float(np.interp(t, truth.times_s, truth.x_m))
        y = float(np.interp(t, truth.times_s, truth.y_m))
        expected = heading + HELSINKI.grid_convergence_deg(x, y)
        assert abs((fix.course_deg - expected + 180.0) % 360.0 - 180.0) < 3.0


def test_positions_are_truth_plus_recorded_error(truth: Truth, fixes: list[GnssFix]) -> None:
    """The reported position is off the truth by exactly the error the fix records."""
    x, y = HELSINKI.to_local(
        np.array([fix.lon for fix in fixes]), np.array([fix.lat for fix in fixes])
    )
    times = np.array([(fix.time - START).total_seconds() for fix in fixes])
    true_x = np.interp(times, truth.times_s, truth.x_m)
    true_y = np.interp(times, truth.times_s, truth.y_m)
    offset = np.hypot(x - true_x, y - true_y)
    recorded = np.hypot([f.error_east_m for f in fixes], [f.error_north_m for f in fixes])
    np.testing.assert_allclose(offset, recorded, atol=0.01)


def test_gpx_round_trip(fixes: list[GnssFix], tmp_path: Path) -> None:
    """gpxpy reads back one track of the same points, times, positions, HDOP and satellites."""
    path = tmp_path / "drive.gpx"
    write_gpx(fixes, path, name="test drive")
    gpx = gpxpy.parse(path.read_text(encoding="utf-8"))
    assert len(gpx.tracks) == 1 and len(gpx.tracks[0].segments) == 1
    assert gpx.tracks[0].name == "test drive"
    points = gpx.tracks[0].segments[0].points
    assert len(points) == len(fixes)
    for point, fix in zip(points, fixes, strict=True):
        assert point.time == fix.time
        assert point.latitude == pytest.approx(fix.lat, abs=1e-6)
        assert point.longitude == pytest.approx(fix.lon, abs=1e-6)
        assert point.elevation == pytest.approx(fix.altitude_m, abs=1e-3)
        assert point.horizontal_dilution == pytest.approx(fix.hdop)
        assert point.satellites == fix.satellites
    assert [p.name for p in tmp_path.iterdir()] == ["drive.gpx"]  # no temporary file left


def _read_nmea(path: Path) -> list[pynmea2.NMEASentence]:
    """Every line of an NMEA log, parsed with its checksum verified."""
    data = path.read_bytes()
    assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")
    return [pynmea2.parse(line, check=True) for line in data.decode("ascii").splitlines()]


def _assert_nmea_matches(sentences: list[pynmea2.NMEASentence], fixes: list[GnssFix]) -> None:
    """Sentences come as one RMC and one GGA per fix, agreeing with it in every logged field."""
    assert len(sentences) == 2 * len(fixes)
    for rmc, gga, fix in zip(sentences[::2], sentences[1::2], fixes, strict=True):
        assert isinstance(rmc, pynmea2.RMC) and isinstance(gga, pynmea2.GGA)
        for sentence in (rmc, gga):
            assert sentence.latitude == pytest.approx(fix.lat, abs=1e-6)
            assert sentence.longitude == pytest.approx(fix.lon, abs=1e-6)
            assert sentence.timestamp == fix.time.timetz().replace(tzinfo=UTC)
        assert rmc.datestamp == fix.time.date()
        assert rmc.status == "A"
        assert rmc.spd_over_grnd == pytest.approx(fix.speed_mps * 3600 / 1852, abs=1e-3)
        assert math.cos(math.radians(rmc.true_course - fix.course_deg)) > 0.99999
        assert gga.gps_qual == 1 and int(gga.num_sats) == fix.satellites
        assert float(gga.horizontal_dil) == pytest.approx(fix.hdop)
        assert gga.altitude == pytest.approx(fix.altitude_m, abs=0.01)


def test_nmea_round_trip(fixes: list[GnssFix], tmp_path: Path) -> None:
    """Every line parses with a valid checksum, and RMC/GGA agree with the fixes across midnight."""
    path = tmp_path / "drive.nmea"
    write_nmea(fixes, path)
    sentences = _read_nmea(path)
    _assert_nmea_matches(sentences, fixes)
    assert {s.datestamp for s in sentences[::2]} == {START.date(), START.date() + timedelta(1)}


def test_southern_western_hemisphere_round_trip(truth: Truth, tmp_path: Path) -> None:
    """A drive in Rio de Janeiro writes S and W and reads back to negative lat/lon."""
    fixes = _simulate(truth, frame=RIO)
    assert all(fix.lat < 0.0 and fix.lon < 0.0 for fix in fixes)
    write_nmea(fixes, tmp_path / "rio.nmea")
    sentences = _read_nmea(tmp_path / "rio.nmea")
    assert {(s.lat_dir, s.lon_dir) for s in sentences} == {("S", "W")}
    _assert_nmea_matches(sentences, fixes)
    write_gpx(fixes, tmp_path / "rio.gpx", name="rio")
    points = gpxpy.parse((tmp_path / "rio.gpx").read_text(encoding="utf-8")).tracks[0].segments[0]
    for point, fix in zip(points.points, fixes, strict=True):
        assert (point.latitude, point.longitude) == pytest.approx((fix.lat, fix.lon), abs=1e-6)


def test_error_is_a_correlated_random_walk_of_the_set_size() -> None:
    """Over 20,000 s the error has the configured sigma per axis and decays to 1/e after tau."""
    options = GnssOptions(rate_hz=1.0, noise_m=2.0, correlation_s=30.0)
    still = np.zeros(2)
    truth = Truth(np.array([0.0, 20_000.0]), still, still, still, still, still)
    fixes = _simulate(truth, options=options, seed=2024)
    assert len(fixes) == 20_001
    lag = round(options.correlation_s * options.rate_hz)
    for axis in ("error_east_m", "error_north_m"):
        error = np.array([getattr(fix, axis) for fix in fixes])
        error -= error.mean()
        assert error.std() == pytest.approx(options.noise_m, rel=0.15)
        autocorrelation = float(np.dot(error[:-lag], error[lag:]) / np.dot(error, error))
        assert autocorrelation == pytest.approx(math.exp(-1.0), abs=0.1)
        # White noise would decorrelate in one step; a random walk barely moves.
        assert float(np.dot(error[:-1], error[1:]) / np.dot(error, error)) > 0.9
    vertical = np.array([fix.altitude_m for fix in fixes])
    assert vertical.std() == pytest.approx(options.altitude_noise_m, rel=0.15)


def test_same_seed_same_fixes_other_seed_other_fixes(truth: Truth) -> None:
    """The receiver is deterministic for a seed and differs between seeds."""
    assert _simulate(truth, seed=7) == _simulate(truth, seed=7)
    assert _simulate(truth, seed=7) != _simulate(truth, seed=8)


@pytest.mark.parametrize("rate_hz", [0.0, -1.0, 25.0, math.nan, math.inf])
def test_invalid_rate_is_a_user_error(rate_hz: float) -> None:
    """A rate that is not above 0 and at most 20 Hz is refused with a clear message."""
    with pytest.raises(UserInputError, match="GNSS rate"):
        GnssOptions(rate_hz=rate_hz)


def test_naive_start_time_and_bad_truth_are_user_errors(truth: Truth) -> None:
    """A start time without a timezone, or times that go backwards, are refused."""
    arrays = (truth.times_s, truth.x_m, truth.y_m, truth.z_m, truth.speed_mps, truth.heading_deg)
    rng = np.random.default_rng(0)
    naive = START.replace(tzinfo=None)
    with pytest.raises(UserInputError, match="timezone"):
        simulate_fixes(*arrays, frame=HELSINKI, start_time=naive, options=GnssOptions(), rng=rng)
    backwards = (truth.times_s[::-1], *arrays[1:])
    with pytest.raises(UserInputError, match="increasing"):
        simulate_fixes(*backwards, frame=HELSINKI, start_time=START, options=GnssOptions(), rng=rng)


def test_unwritable_log_is_an_output_error(fixes: list[GnssFix], tmp_path: Path) -> None:
    """Writing into a folder that does not exist raises the simulator's output error."""
    with pytest.raises(OutputError, match=r"cannot write .*drive\.nmea"):
        write_nmea(fixes, tmp_path / "missing" / "drive.nmea")
