"""Putting a video on the GNSS clock when its start time is not known exactly.

How much consecutive frames differ follows how fast the car moves and turns: nothing changes at a
standstill, more at speed, and a lot in a bend taken slowly (the whole view sweeps sideways). The
offset at which the receiver's speed and turn rate explain that image-motion profile best is the
video's start on the GNSS clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.errors import EdgeError
from edge.track import Track

FloatArray = NDArray[np.float64]
# How well (-1..1) image motion follows the speed and turn rate at one trial offset.
Score = Callable[[FloatArray, FloatArray, FloatArray], float]
PROFILE_WIDTH_PX = 160
# Below this speed the receiver's course is noise, not turning.
TURNING_FROM_MPS = 1.0


class SyncError(EdgeError):
    """The video and the GNSS log share too little to line them up."""


@dataclass(frozen=True)
class Offset:
    """Seconds to add to the assumed video start, and how well the profiles then agree (-1..1)."""

    seconds: float
    correlation: float


def motion_profile(video: Path, *, step: int = 3) -> tuple[FloatArray, FloatArray]:
    """Seconds from the first frame (midway between the sampled pair), and the log of the mean
    absolute change between them: the log evens out how much texture a scene happens to have."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    times, energy, previous, index = [], [], None, 0
    while capture.grab():
        if index % step == 0:
            ok, frame = capture.retrieve()
            if not ok:
                break
            height = round(frame.shape[0] * PROFILE_WIDTH_PX / frame.shape[1])
            grey = cv2.cvtColor(
                cv2.resize(frame, (PROFILE_WIDTH_PX, height), interpolation=cv2.INTER_AREA),
                cv2.COLOR_BGR2GRAY,
            )
            current = grey.astype(np.float32)
            if previous is not None:
                times.append((index - step / 2) / fps)
                energy.append(float(np.log1p(np.abs(current - previous).mean())))
            previous = current
        index += 1
    capture.release()
    return np.array(times), np.array(energy)


def estimate_offset(
    track: Track,
    start_s: float,
    times: FloatArray,
    energy: FloatArray,
    *,
    search_s: float = 30.0,
    step_s: float = 0.1,
    score: Score | None = None,
) -> Offset:
    """The offset within +-`search_s` at which the GNSS speed and turn rate explain the image
    motion best: by `score(energy, speed, turn rate)`, `fit` unless given."""
    score = score or fit
    turn_rate = _turn_rate(track)
    best = Offset(0.0, -2.0)
    for shift in np.arange(-search_s, search_s + step_s / 2, step_s):
        at = start_s + shift + times
        inside = (at >= track.t_s[0]) & (at <= track.t_s[-1])
        if inside.sum() < max(20, 0.5 * len(times)):
            continue
        speed = np.interp(at[inside], track.t_s, track.speed)
        if speed.std() < 0.1 or energy[inside].std() < 1e-6:
            continue
        turning = np.interp(at[inside], track.t_s, turn_rate)
        correlation = score(energy[inside], speed, turning)
        if correlation > best.correlation:
            best = Offset(round(float(shift), 2), round(correlation, 3))
    if best.correlation < 0.3:
        msg = (
            f"cannot line the video up with the GNSS log (best correlation {best.correlation:.2f}): "
            "give the video's start time with --video-start"
        )
        raise SyncError(msg)
    return best


def _turn_rate(track: Track) -> FloatArray:
    """Degrees per second the course changes at each fix, zero where the car barely moves."""
    if len(track.t_s) < 2:
        return np.zeros(len(track.t_s))
    course = np.degrees(np.unwrap(np.radians(track.heading)))
    rate = np.abs(np.gradient(course, track.t_s))
    return np.where(track.speed >= TURNING_FROM_MPS, rate, 0.0)


def fit(energy: FloatArray, speed: FloatArray, turning: FloatArray) -> float:
    """How well speed and turn rate explain `energy` (the multiple correlation, 0..1, of a
    linear fit on their logs: `energy` is a log, and image motion grows by a factor with each),
    or -1 where the fit has more speed meaning less motion."""
    features = np.column_stack([np.ones_like(speed), np.log1p(speed), np.log1p(turning)])
    coefficients, *_ = np.linalg.lstsq(features, energy, rcond=None)
    if coefficients[1] <= 0:
        return -1.0
    residual = energy - features @ coefficients
    explained = 1.0 - float(residual @ residual) / float(((energy - energy.mean()) ** 2).sum())
    return float(np.sqrt(max(explained, 0.0)))
