"""A simulated GNSS receiver for the virtual dashcam, and the GPX and NMEA logs it writes.

Real receiver error is not white: multipath and atmospheric delays drift over tens of seconds, so
a track wanders smoothly away from the road and back. We model it as a first-order Gauss-Markov
process per axis plus a little white jitter, and record the applied error on every fix so that later
stages (map matching, stitching) can be scored against the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gpxpy.gpx
import numpy as np
import pynmea2
from numpy.typing import NDArray

from roadswarm.errors import UserInputError
from roadswarm.files import write_atomically
from roadswarm.sim.geo import FloatArray, LocalFrame

IntArray = NDArray[np.int64]

MAX_RATE_HZ = 20.0
SPEED_NOISE_MPS = 0.1  # Doppler-derived speed is far better than position
MIN_COURSE_SPEED_MPS = 0.5  # below this a receiver's course over ground is noise
SATELLITES_MIN, SATELLITES_MAX = 8, 14
SATELLITE_CHANGE_S = 60.0  # mean time between one satellite rising or setting
HDOP_MIN, HDOP_MAX = 0.8, 1.5
KNOTS_PER_MPS = 3600.0 / 1852.0
MINUTE_UNITS = 100_000  # NMEA minutes carry 5 decimals: about 2 cm of latitude


@dataclass(frozen=True)
class GnssOptions:
    """How the simulated receiver samples and how wrong it is."""

    rate_hz: float = 1.0  # dashcam receivers log at 1 or 10 Hz
    noise_m: float = 2.0  # 1-sigma of the correlated horizontal error, per axis
    correlation_s: float = 30.0  # how long that error takes to forget itself (1/e)
    white_noise_m: float = 0.3  # uncorrelated jitter on top, per axis
    altitude_noise_m: float = 4.0  # 1-sigma of the correlated vertical error

    def __post_init__(self) -> None:
        if not 0.0 < self.rate_hz <= MAX_RATE_HZ:  # also rejects NaN
            msg = f"GNSS rate must be above 0 and at most {MAX_RATE_HZ:g} Hz, got {self.rate_hz}"
            raise UserInputError(msg)
        noises = (self.noise_m, self.white_noise_m, self.altitude_noise_m)
        if not (self.correlation_s > 0.0 and all(v >= 0.0 for v in noises)):
            msg = f"GNSS noise must be >= 0 m and correlation time > 0 s, got {self}"
            raise UserInputError(msg)


@dataclass(frozen=True)
class GnssFix:
    """One receiver epoch, with the error that was applied to it."""

    time: datetime  # UTC, timezone-aware
    lon: float
    lat: float
    altitude_m: float
    speed_mps: float
    course_deg: float  # over ground, clockwise from true north, in [0, 360)
    hdop: float
    satellites: int
    fix_quality: int  # as in GGA: 1 is a plain GPS fix
    error_east_m: float  # the horizontal error applied, in true east and north: the truth
    error_north_m: float


def simulate_fixes(
    times_s: FloatArray,
    x_m: FloatArray,
    y_m: FloatArray,
    z_m: FloatArray,
    speed_mps: FloatArray,
    heading_deg: FloatArray,
    *,
    frame: LocalFrame,
    start_time: datetime,
    options: GnssOptions,
    rng: np.random.Generator,
) -> list[GnssFix]:
    """Sample a true trajectory as a noisy receiver would report it, one fix per GNSS epoch.

    The arrays are the truth sampled densely: seconds since `start_time`, local metres east, north
    and up, speed, and heading clockwise from grid north. Epochs fall at whole multiples of
    1 / rate_hz inside the sampled time span.
    """
    if start_time.tzinfo is None:
        msg = "GNSS start time must be timezone-aware (UTC)"
        raise UserInputError(msg)
    track = _check_track(times_s, x_m, y_m, z_m, speed_mps, heading_deg)
    epochs = _epochs(track[0], options.rate_hz)
    n, dt = epochs.size, 1.0 / options.rate_hz
    if n == 0:
        return []
    x, y, z, speed = (np.interp(epochs, track[0], a) for a in track[1:5])
    # Unwrapped first so that 359 -> 1 interpolates through 0, not through 180.
    heading = np.interp(epochs, track[0], np.unwrap(track[5], period=360.0))
    points = zip(x.tolist(), y.tolist(), strict=True)
    convergence = np.array([frame.grid_convergence_deg(a, b) for a, b in points])
    east, north, up = _position_errors(n, dt, options, rng)
    lon, lat = _apply_error(frame, x, y, east, north, convergence)
    speed = np.maximum(speed + rng.normal(0.0, SPEED_NOISE_MPS, n), 0.0)
    course = _courses((heading + convergence) % 360.0, speed, rng)
    satellites = _satellites(n, dt, rng)
    hdop = _hdop(satellites, rng)
    t0 = start_time.astimezone(UTC)
    # tolist() hands back plain Python floats and ints, which is what the record promises.
    columns = (lon, lat, z + up, speed, course, hdop, satellites, east, north)
    rows = zip(epochs.tolist(), *(c.tolist() for c in columns), strict=True)
    return [
        GnssFix(t0 + timedelta(seconds=t), lo, la, alt, v, c, h, s, 1, e, nn)
        for t, lo, la, alt, v, c, h, s, e, nn in rows
    ]


def _check_track(*arrays: FloatArray) -> tuple[FloatArray, ...]:
    """The truth arrays as equal-length 1-D floats over strictly increasing, finite times."""
    track = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    if any(a.ndim != 1 or a.shape != track[0].shape for a in track) or track[0].size == 0:
        msg = "GNSS truth arrays must be non-empty, one-dimensional and of equal length"
        raise UserInputError(msg)
    if not all(np.isfinite(a).all() for a in track) or np.any(np.diff(track[0]) <= 0.0):
        msg = "GNSS truth must be finite and its times strictly increasing"
        raise UserInputError(msg)
    return track


def _epochs(times_s: FloatArray, rate_hz: float) -> FloatArray:
    """Whole multiples of the GNSS period inside the truth's time span, as a receiver ticks."""
    slack = 1e-9  # so that an end time of 99.99999999999 still gets its epoch at 100 s
    first = math.ceil(times_s[0] * rate_hz - slack)
    last = math.floor(times_s[-1] * rate_hz + slack)
    epochs = np.arange(first, last + 1, dtype=np.float64) / rate_hz
    return np.clip(epochs, times_s[0], times_s[-1])


def _gauss_markov(
    n: int, dt: float, sigma: float, tau: float, rng: np.random.Generator
) -> FloatArray:
    """A stationary first-order Gauss-Markov series, discretised exactly for a step of dt."""
    phi = math.exp(-dt / tau)
    # Drive noise chosen so that the variance stays sigma**2 at every step, from the first on.
    drive = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), n)
    drive[0] = rng.normal(0.0, sigma)
    out = np.empty(n)
    state = 0.0
    for i in range(n):
        state = phi * state + drive[i]
        out[i] = state
    return out


def _position_errors(
    n: int, dt: float, options: GnssOptions, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Errors east, north and up in metres: correlated drift, plus white jitter horizontally."""
    tau = options.correlation_s
    east = _gauss_markov(n, dt, options.noise_m, tau, rng)
    north = _gauss_markov(n, dt, options.noise_m, tau, rng)
    up = _gauss_markov(n, dt, options.altitude_noise_m, tau, rng)
    east += rng.normal(0.0, options.white_noise_m, n)
    north += rng.normal(0.0, options.white_noise_m, n)
    return east, north, up


def _apply_error(
    frame: LocalFrame,
    x: FloatArray,
    y: FloatArray,
    east: FloatArray,
    north: FloatArray,
    convergence_deg: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Lon/lat of the truth displaced by an error given in true (not grid) east and north."""
    gamma = np.radians(convergence_deg)
    # Grid north lies gamma clockwise of true north, so a true vector turns by -gamma on the grid.
    dx = east * np.cos(gamma) - north * np.sin(gamma)
    dy = north * np.cos(gamma) + east * np.sin(gamma)
    return frame.to_wgs84(x + dx, y + dy)


def _courses(true_course: FloatArray, speed: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Course over ground: noisier when slow, held at the last good value when stopped."""
    # Course comes from the velocity vector, so its error grows as the speed shrinks.
    sigma = np.degrees(np.arctan2(SPEED_NOISE_MPS, np.maximum(speed, MIN_COURSE_SPEED_MPS)))
    noisy = (true_course + rng.normal(0.0, 1.0, speed.size) * sigma) % 360.0
    out = np.empty_like(noisy)
    held = float(true_course[0])  # as if remembered from before the trip started
    for i, value in enumerate(noisy):
        if speed[i] >= MIN_COURSE_SPEED_MPS:
            held = float(value)
        out[i] = held
    return out


def _satellites(n: int, dt: float, rng: np.random.Generator) -> IntArray:
    """Satellites in use: a slow random walk as satellites rise and set, kept within bounds."""
    changes = rng.random(n) < dt / SATELLITE_CHANGE_S
    steps = rng.choice(np.array([-1, 1]), n)
    out = np.empty(n, dtype=np.int64)
    count = int(rng.integers(SATELLITES_MIN, SATELLITES_MAX + 1))
    for i in range(n):
        if changes[i]:
            count = min(max(count + int(steps[i]), SATELLITES_MIN), SATELLITES_MAX)
        out[i] = count
    return out


def _hdop(satellites: IntArray, rng: np.random.Generator) -> FloatArray:
    """Horizontal dilution of precision, better with more satellites, to the 0.1 a receiver logs."""
    geometry = 1.1 * np.sqrt(11.0 / satellites.astype(np.float64))
    jitter = rng.normal(0.0, 0.05, satellites.size)
    return np.clip(geometry + jitter, HDOP_MIN, HDOP_MAX).round(1)


def write_gpx(fixes: list[GnssFix], path: Path, *, name: str) -> None:
    """Write the fixes as a GPX 1.1 file of one track with one segment, atomically."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "roadswarm simulated GNSS"
    track = gpxpy.gpx.GPXTrack(name=name)
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(track)
    track.segments.append(segment)
    for fix in fixes:
        point = gpxpy.gpx.GPXTrackPoint(
            fix.lat, fix.lon, elevation=fix.altitude_m, time=fix.time, horizontal_dilution=fix.hdop
        )
        point.satellites = fix.satellites
        point.type_of_gpx_fix = "3d"
        segment.points.append(point)
    write_atomically(path, gpx.to_xml(version="1.1").encode("utf-8"))


def write_nmea(fixes: list[GnssFix], path: Path) -> None:
    """Write one $GPRMC and one $GPGGA sentence per fix, CRLF-terminated, atomically."""
    lines = [str(sentence) for fix in fixes for sentence in (_rmc(fix), _gga(fix))]
    write_atomically(path, "".join(f"{line}\r\n" for line in lines).encode("ascii"))


def _rmc(fix: GnssFix) -> pynmea2.RMC:
    """The recommended-minimum sentence: time, position, speed and course."""
    hhmmss, ddmmyy = _nmea_time(fix.time)
    knots = f"{fix.speed_mps * KNOTS_PER_MPS:.3f}"
    course = f"{round(fix.course_deg, 2) % 360.0:.2f}"  # 359.999 must not print as 360.00
    fields = (hhmmss, "A", *_nmea_position(fix), knots, course, ddmmyy, "", "", "A")
    return pynmea2.RMC("GP", "RMC", fields)


def _gga(fix: GnssFix) -> pynmea2.GGA:
    """The fix-data sentence: time, position, quality, satellites, HDOP and altitude."""
    hhmmss, _ = _nmea_time(fix.time)
    quality = (str(fix.fix_quality), f"{fix.satellites:02d}", f"{fix.hdop:.1f}")
    heights = (f"{fix.altitude_m:.2f}", "M", "0.0", "M", "", "")
    return pynmea2.GGA("GP", "GGA", (hhmmss, *_nmea_position(fix), *quality, *heights))


def _nmea_time(time: datetime) -> tuple[str, str]:
    """UTC as hhmmss.ss and ddmmyy, rounded to the centisecond first so that 59.999 s rolls over."""
    utc = time.astimezone(UTC)
    centis = round(utc.microsecond / 10_000)
    utc = utc.replace(microsecond=0) + timedelta(milliseconds=10 * centis)
    return f"{utc:%H%M%S}.{utc.microsecond // 10_000:02d}", f"{utc:%d%m%y}"


def _nmea_position(fix: GnssFix) -> tuple[str, str, str, str]:
    """Latitude as ddmm.mmmmm, N or S, then longitude as dddmm.mmmmm, E or W."""
    lat_hemisphere = "N" if fix.lat >= 0.0 else "S"
    lon_hemisphere = "E" if fix.lon >= 0.0 else "W"
    lat, lon = _degrees_minutes(abs(fix.lat), 2), _degrees_minutes(abs(fix.lon), 3)
    return lat, lat_hemisphere, lon, lon_hemisphere


def _degrees_minutes(value: float, degree_digits: int) -> str:
    """Degrees and decimal minutes, rounded in integer units so that minutes never print as 60."""
    units = round(value * 60.0 * MINUTE_UNITS)
    degrees, rest = divmod(units, 60 * MINUTE_UNITS)
    minutes, fraction = divmod(rest, MINUTE_UNITS)
    return f"{degrees:0{degree_digits}d}{minutes:02d}.{fraction:05d}"
