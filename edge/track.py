"""The vehicle's pose at any instant on the GNSS clock, interpolated between fixes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from edge.gnss.fix import Fix, FixQuality

FloatArray = NDArray[np.float64]
EARTH_RADIUS_M = 6_371_008.8
MAX_GAP_S = 3.0


@dataclass(frozen=True)
class Pose:
    """Where the camera was at `t_s` (seconds on the GNSS UTC clock), or why that is not known."""

    t_s: float
    lon: float
    lat: float
    altitude_m: float | None
    heading_deg: float
    speed_mps: float
    hdop: float | None
    problem: str | None = None
    # The slower of the two fixes around this instant: at 1 Hz a stop begins between fixes, and
    # interpolated speed would still say "moving" for part of a second of standing still.
    slowest_mps: float = 0.0
    # Whether both fixes around this instant reported their (Doppler) speed: that reads near
    # zero while standing, where speed from positions alone wanders with them.
    doppler: bool = False


def local_metres(
    lon: FloatArray, lat: FloatArray, lon0: float, lat0: float
) -> tuple[FloatArray, FloatArray]:
    """East/north metres from (lon0, lat0): equirectangular, accurate to centimetres over a few km."""
    x = np.radians(lon - lon0) * math.cos(math.radians(lat0)) * EARTH_RADIUS_M
    y = np.radians(lat - lat0) * EARTH_RADIUS_M
    return x, y


def _values(fixes: list[Fix], name: str) -> FloatArray:
    return np.array(
        [np.nan if getattr(f, name) is None else float(getattr(f, name)) for f in fixes]
    )


class Track:
    """Fixes in time order, interpolated linearly (headings across the 0/360 wrap)."""

    def __init__(
        self,
        fixes: list[Fix],
        quality: FixQuality | None = None,
        *,
        origin: tuple[float, float] | None = None,
    ) -> None:
        """`origin` (lon, lat) of the local metres speeds are derived in; default the first fix.
        A live track built over a window of a trip's fixes passes the trip's first fix, so its poses
        equal those of the whole trip's track."""
        if len(fixes) < 2:
            msg = f"a track needs at least two fixes, got {len(fixes)}: check the GNSS log covers the drive"
            raise ValueError(msg)
        self.fixes = fixes
        self.origin = origin or (fixes[0].lon, fixes[0].lat)
        self.t_s = np.array([f.time.timestamp() for f in fixes])
        self.lon, self.lat = _values(fixes, "lon"), _values(fixes, "lat")
        self.altitude = _values(fixes, "altitude_m")
        self.hdop = _values(fixes, "hdop")
        reported = _values(fixes, "speed_mps")
        self.doppler = ~np.isnan(reported)
        self.speed = self._speeds(reported)
        self.heading = self._headings(_values(fixes, "course_deg"))
        checker = quality or FixQuality()
        self.problems = [checker.problem(f) for f in fixes]

    @property
    def start(self) -> datetime:
        return self.fixes[0].time

    def _motion(self) -> tuple[FloatArray, FloatArray]:
        x, y = local_metres(self.lon, self.lat, *self.origin)
        return np.gradient(x, self.t_s), np.gradient(y, self.t_s)

    def _speeds(self, reported: FloatArray) -> FloatArray:
        """Doppler speed where the receiver gives it (steady when positions wander), else motion."""
        vx, vy = self._motion()
        return np.where(np.isnan(reported), np.hypot(vx, vy), reported)

    def _headings(self, reported: FloatArray) -> FloatArray:
        vx, vy = self._motion()
        moved = np.degrees(np.arctan2(vx, vy)) % 360
        return np.where(np.isnan(reported), moved, reported)

    def poses(self, times_s: FloatArray) -> list[Pose]:
        """The pose at each instant; outside the track, across a gap, or next to a bad fix it
        carries the problem instead of a guess."""
        index = np.clip(np.searchsorted(self.t_s, times_s, side="right"), 1, len(self.t_s) - 1)
        before, after = index - 1, index
        span = self.t_s[after] - self.t_s[before]
        w = np.clip((times_s - self.t_s[before]) / np.maximum(span, 1e-9), 0.0, 1.0)
        lon = self.lon[before] * (1 - w) + self.lon[after] * w
        lat = self.lat[before] * (1 - w) + self.lat[after] * w
        altitude = self.altitude[before] * (1 - w) + self.altitude[after] * w
        turn = (self.heading[after] - self.heading[before] + 180.0) % 360.0 - 180.0
        heading = (self.heading[before] + turn * w) % 360.0
        speed = self.speed[before] * (1 - w) + self.speed[after] * w
        hdop = np.fmax(self.hdop[before], self.hdop[after])
        return [
            Pose(
                float(t),
                float(lon[i]),
                float(lat[i]),
                None if np.isnan(altitude[i]) else float(altitude[i]),
                float(heading[i]),
                float(speed[i]),
                None if np.isnan(hdop[i]) else float(hdop[i]),
                self._problem(float(t), int(before[i]), int(after[i])),
                float(min(self.speed[before[i]], self.speed[after[i]])),
                bool(self.doppler[before[i]] and self.doppler[after[i]]),
            )
            for i, t in enumerate(times_s)
        ]

    def _problem(self, t: float, before: int, after: int) -> str | None:
        if t < self.t_s[0] or t > self.t_s[-1]:
            return "no GNSS fix covers this instant"
        if self.t_s[after] - self.t_s[before] > MAX_GAP_S:
            return f"GNSS gap of {self.t_s[after] - self.t_s[before]:.1f} s"
        return self.problems[before] or self.problems[after]
