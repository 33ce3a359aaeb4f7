"""GPS plausibility of a sequence: time order, speed, acceleration, capture time vs server time.

Each point is judged against the last plausible point before it (the anchor), so one wild fix is
quarantined alone instead of also condemning its honest neighbour. A point depends only on the
points before it, so the verdicts do not change when later batches of the sequence arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.imagecheck import Rejection
from ingest.settings import ValidationSettings

EARTH_RADIUS_M = 6_371_008.8
# After this many consecutive rejected points that agree with each other, the anchor itself was
# the odd one out (a bad fix at the start): judge what follows from them instead.
REANCHOR_RUN = 3
# Doppler speeds are good to a fraction of a metre per second; allow that much before dividing.
SPEED_NOISE_MPS = 1.0


@dataclass(frozen=True)
class TrackPoint:
    """What the plausibility checks need of a frame."""

    index: int
    time: datetime
    lat: float
    lon: float
    speed_mps: float


def distance_m(a: TrackPoint, b: TrackPoint) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlmb = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def link_problem(a: TrackPoint, b: TrackPoint, settings: ValidationSettings) -> Rejection | None:
    """Why moving from `a` to `b` is impossible for a car, or None."""
    dt = (b.time - a.time).total_seconds()
    if dt <= 0:
        return Rejection("time_order", f"captured {-dt:.3f} s before (or with) frame {a.index}")
    speed = max(0.0, distance_m(a, b) - settings.position_noise_m) / dt
    if speed > settings.max_speed_mps:
        return Rejection(
            "teleport",
            f"{distance_m(a, b):.0f} m from frame {a.index} in {dt:.2f} s ({speed:.0f} m/s)",
        )
    accel = max(0.0, abs(b.speed_mps - a.speed_mps) - SPEED_NOISE_MPS) / dt
    if accel > settings.max_acceleration_mps2:
        return Rejection(
            "implausible_acceleration",
            f"speed {a.speed_mps:.1f} -> {b.speed_mps:.1f} m/s in {dt:.2f} s",
        )
    return None


def time_problem(
    point: TrackPoint, received_at: datetime, settings: ValidationSettings
) -> Rejection | None:
    """A capture time in the future, or older than the catalog accepts, for when it arrived."""
    if point.time > received_at + timedelta(seconds=settings.max_future_s):
        return Rejection(
            "future_capture", f"captured at {point.time.isoformat()}, after it arrived"
        )
    if point.time < received_at - timedelta(days=settings.max_age_days):
        return Rejection(
            "stale_capture",
            f"captured at {point.time.isoformat()}, over {settings.max_age_days:g} days before it arrived",
        )
    return None


def implausible_points(
    points: Sequence[TrackPoint], settings: ValidationSettings
) -> dict[int, Rejection]:
    """Rejections by index for the points of one sequence, given in index order."""
    rejected: dict[int, Rejection] = {}
    anchor: TrackPoint | None = None
    run: list[TrackPoint] = []
    for point in points:
        problem = None if anchor is None else link_problem(anchor, point, settings)
        if problem is None:
            anchor, run = point, []
            continue
        rejected[point.index] = problem
        run = [*run, point] if run and link_problem(run[-1], point, settings) is None else [point]
        if len(run) >= REANCHOR_RUN:
            anchor, run = point, []
    return rejected
