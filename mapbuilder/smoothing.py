"""A track smoothed in time: positions, velocities, headings and speeds from a local linear fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapbuilder.geo import FloatArray


@dataclass(frozen=True)
class Smoothed:
    """A smoothed track: positions (m) and velocities (m/s, or m per point without times)."""

    x_m: FloatArray
    y_m: FloatArray
    vx: FloatArray
    vy: FloatArray


def clock(t: FloatArray) -> FloatArray | None:
    """Strictly increasing seconds since the first point (repeated times nudged apart by 1 ms),
    or None without times.

    The seconds are rounded to the microsecond, the resolution of the catalog's times: two POSIX
    times near 1.8e9 s differ by their true gap plus up to ~2e-7 s of float error, and that error
    depends on the absolute time. Rounded away, the same drive is smoothed to the same bits (and
    builds byte-identical tiles) whenever it was recorded.
    """
    if len(t) == 0 or np.isnan(t).any():
        return None
    seconds = np.round(t - t[0], 6)
    return np.asarray(seconds + 1e-3 * np.cumsum(np.diff(seconds, prepend=-np.inf) <= 0))


def smooth_track(x: FloatArray, y: FloatArray, t: FloatArray, sigma_s: float) -> Smoothed:
    """Positions and velocities from a local linear fit under a Gaussian in time at each point
    (a plain weighted mean would pull a track's ends inwards). Without times, index steps stand in
    for seconds."""
    seconds = clock(t)
    if seconds is None:
        seconds = np.arange(len(t), dtype=np.float64)
    # Weighted sums of 1, dt, dt^2, x, x dt, y, y dt over the neighbours within three sigma.
    s0, s1, s2, tx, txt, ty, tyt = np.zeros((7, len(t)))
    reach = 1
    while reach < len(t) and np.any(seconds[reach:] - seconds[:-reach] <= 3 * sigma_s):
        reach += 1
    for shift in range(1 - reach, reach):
        lo, hi = max(0, -shift), min(len(t), len(t) - shift)
        dt = seconds[lo + shift : hi + shift] - seconds[lo:hi]
        w = np.exp(-0.5 * (dt / sigma_s) ** 2)
        wx, wy, wdt = w * x[lo + shift : hi + shift], w * y[lo + shift : hi + shift], w * dt
        s0[lo:hi] += w
        s1[lo:hi] += wdt
        s2[lo:hi] += wdt * dt
        tx[lo:hi] += wx
        txt[lo:hi] += wx * dt
        ty[lo:hi] += wy
        tyt[lo:hi] += wy * dt
    det = s0 * s2 - s1 * s1
    fit = det > 1e-9 * s0 * s0  # a line needs weight on two different times
    safe = np.where(fit, det, 1.0)
    sx = np.where(fit, (s2 * tx - s1 * txt) / safe, tx / s0)
    sy = np.where(fit, (s2 * ty - s1 * tyt) / safe, ty / s0)
    vx = np.where(fit, (s0 * txt - s1 * tx) / safe, 0.0)
    vy = np.where(fit, (s0 * tyt - s1 * ty) / safe, 0.0)
    return Smoothed(sx, sy, vx, vy)


def headings(
    smooth: Smoothed, *, has_clock: bool, min_speed_mps: float
) -> tuple[FloatArray, FloatArray]:
    """Heading (clockwise from north) and speed of a smoothed track. Below `min_speed_mps` the
    last heading is held; without times the speed is unknown (NaN) and any motion counts."""
    speed = np.hypot(smooth.vx, smooth.vy)
    moving = speed >= (min_speed_mps if has_clock else 0.1)
    heading = np.where(moving, np.degrees(np.arctan2(smooth.vx, smooth.vy)) % 360.0, np.nan)
    return hold(heading), speed if has_clock else np.full(len(speed), np.nan)


def hold(values: FloatArray) -> FloatArray:
    """NaNs replaced by the last value before them (the first value for leading NaNs)."""
    valid = ~np.isnan(values)
    if not valid.any():
        return values
    last = np.maximum.accumulate(np.where(valid, np.arange(len(values)), -1))
    last[last < 0] = np.flatnonzero(valid)[0]
    return values[last]
