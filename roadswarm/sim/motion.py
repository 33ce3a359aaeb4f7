"""How the virtual vehicle moves along its path: speed limits, bends, stops, and time."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from roadswarm.sim.route import DrivePath

FloatArray = NDArray[np.float64]
ACCEL_MPS2 = 1.5
BRAKE_MPS2 = 2.5
LATERAL_MPS2 = 2.0
CREEP_MPS = 0.05


@dataclass(frozen=True)
class Stop:
    """The vehicle stands still at path index `index` for `dwell_s` seconds."""

    index: int
    dwell_s: float
    reason: str


@dataclass(frozen=True)
class Timeline:
    """Arc length against time, with stops as flat stretches: s(t) is monotone, never decreasing."""

    t_s: FloatArray
    s_m: FloatArray

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])

    def distance_at(self, times_s: FloatArray) -> FloatArray:
        return np.interp(times_s, self.t_s, self.s_m)


def choose_stops(
    path: DrivePath, junction_indices: list[int], minutes: float, rng: random.Random
) -> list[Stop]:
    """Stop at some junctions, and stand still a few times (traffic, a delivery) within the part
    of the route the drive will actually reach in `minutes`."""
    stops = [
        Stop(i, rng.uniform(1.0, 5.0), "junction") for i in junction_indices if rng.random() < 0.25
    ]
    # Where the vehicle will be in time: the route is longer than the drive, so stops placed by
    # distance alone could all fall beyond its end.
    clock = timeline(path, speed_profile(path, stops), stops)
    for _ in range(int(minutes // 1.5) + (1 if minutes >= 0.5 else 0)):
        when = rng.uniform(0.2, 0.8) * min(minutes * 60.0, clock.duration_s)
        index = int(np.searchsorted(path.s_m, float(clock.distance_at(np.array([when]))[0])))
        stops.append(
            Stop(min(max(index, 1), len(path.s_m) - 2), rng.uniform(5.0, 15.0), "stationary")
        )
    return sorted(stops, key=lambda stop: stop.index)


def speed_profile(path: DrivePath, stops: list[Stop]) -> FloatArray:
    """The fastest speed that respects limits, bends, acceleration and braking, and stops."""
    ceiling = np.minimum(
        path.speed_limit_mps, np.sqrt(LATERAL_MPS2 / np.maximum(path.curvature_per_m, 1e-4))
    )
    ceiling[[0, -1]] = 0.0
    for stop in stops:
        ceiling[stop.index] = 0.0
    ds = np.diff(path.s_m)
    forward = ceiling.copy()
    for i in range(1, len(forward)):
        forward[i] = min(forward[i], np.sqrt(forward[i - 1] ** 2 + 2 * ACCEL_MPS2 * ds[i - 1]))
    for i in range(len(forward) - 2, -1, -1):
        forward[i] = min(forward[i], np.sqrt(forward[i + 1] ** 2 + 2 * BRAKE_MPS2 * ds[i]))
    return forward


def timeline(path: DrivePath, speed_mps: FloatArray, stops: list[Stop]) -> Timeline:
    """Integrate time over the path, inserting each stop's dwell where the vehicle stands."""
    ds = np.diff(path.s_m)
    mean_speed = np.maximum((speed_mps[:-1] + speed_mps[1:]) / 2, CREEP_MPS)
    t = np.concatenate([[0.0], np.cumsum(ds / mean_speed)])
    dwell_at: dict[int, float] = {}
    for stop in stops:  # two stops at one place are one longer stop
        dwell_at[stop.index] = dwell_at.get(stop.index, 0.0) + stop.dwell_s
    index = np.array(sorted(dwell_at), dtype=np.int64)
    dwell = np.array([dwell_at[i] for i in index])
    # Every point is reached later by the dwell of each stop before it; a stop's own point is where
    # the vehicle arrives, and a copy of it, a dwell later, is where it leaves.
    waited = np.concatenate([[0.0], np.cumsum(dwell)])[np.searchsorted(index, np.arange(len(t)))]
    arrive = t + waited
    t_points = np.insert(arrive, index + 1, arrive[index] + dwell)
    s_points = np.insert(path.s_m, index + 1, path.s_m[index])
    return Timeline(t_points, s_points)
