"""Sequence stitching: frames or fixes joined into continuous sequences, split where consecutive
points are too far apart in time, distance or heading, with headings and speeds recomputed from
a smoothed track (a receiver's own course is noisy at low speed and absent from many files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from mapbuilder.geo import FloatArray, LocalFrame
from mapbuilder.smoothing import clock, headings, smooth_track

IntArray = NDArray[np.int64]
SplitReason = Literal["start", "time gap", "distance gap", "speed jump", "heading change"]


@dataclass(frozen=True)
class TrackPoint:
    """One fix or frame position: WGS84 degrees, UTC time where known."""

    lon: float
    lat: float
    time: datetime | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None


@dataclass(frozen=True)
class SequenceOptions:
    """Where a sequence ends, and how much the track is smoothed before headings are taken."""

    max_gap_s: float = 60.0
    max_gap_m: float = 600.0
    # A step longer than max_speed_mps x its time + jump_margin_m is a jump of the receiver, not
    # driving; the margin keeps the errors of fixes 0.1 s apart from looking like one.
    max_speed_mps: float = 70.0
    jump_margin_m: float = 50.0
    # A turn this sharp between consecutive points, both at least this fast, is a glitch or a
    # new trip, not driving: slower headings are too noisy to judge (5 m of error at 1 Hz).
    max_heading_change_deg: float = 150.0
    heading_split_speed_mps: float = 5.0
    smoothing_s: float = 1.0  # sigma of the Gaussian (in time) applied to positions
    min_speed_mps: float = 1.0  # slower is standing: the heading is held, not recomputed


@dataclass(frozen=True)
class StitchedSequence:
    """Points of one continuous sequence in time order (`indices` into the input): positions in a
    local metric frame, raw and smoothed, and the headings (clockwise from the frame's north) and
    speeds of the smoothed track; headings are NaN only where the sequence never moved."""

    indices: IntArray
    starts_because: SplitReason
    time_s: FloatArray  # POSIX seconds, NaN where the input has no time
    x_m: FloatArray = field(repr=False)
    y_m: FloatArray = field(repr=False)
    smooth_x_m: FloatArray = field(repr=False)
    smooth_y_m: FloatArray = field(repr=False)
    heading_deg: FloatArray = field(repr=False)
    speed_mps: FloatArray = field(repr=False)


def usable_points(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    """Points with finite, in-range WGS84 coordinates: the only ones that can be matched."""
    with np.errstate(invalid="ignore"):
        return np.asarray(
            np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)
        )


def stitch_points(
    points: Sequence[TrackPoint],
    *,
    frame: LocalFrame | None = None,
    options: SequenceOptions | None = None,
) -> list[StitchedSequence]:
    """`stitch` for records: times become POSIX seconds (NaN where missing)."""
    lon = np.array([p.lon for p in points], dtype=np.float64)
    lat = np.array([p.lat for p in points], dtype=np.float64)
    time_s = np.array([p.time.timestamp() if p.time else np.nan for p in points], dtype=np.float64)
    given = np.array([np.nan if p.heading_deg is None else p.heading_deg for p in points])
    return stitch(lon, lat, time_s, heading_deg=given, frame=frame, options=options)


def stitch(
    lon: FloatArray,
    lat: FloatArray,
    time_s: FloatArray,
    *,
    heading_deg: FloatArray | None = None,
    frame: LocalFrame | None = None,
    options: SequenceOptions | None = None,
) -> list[StitchedSequence]:
    """Usable points sorted by time (stably; input order where times are missing) and split into
    sequences; points with bad coordinates belong to none. A heading change is judged on the
    points' own headings where given (a frame's recorded heading), else on the smoothed track's.
    Positions are worked on in `frame` (default: one centred on the points; a matcher passes its
    network's, to reuse it)."""
    opts = options or SequenceOptions()
    keep = np.flatnonzero(usable_points(lon, lat))
    if keep.size == 0:
        return []
    times = time_s[keep]
    # Without a full clock the input's order is the only order there is.
    order = keep if np.isnan(times).any() else keep[np.argsort(times, kind="stable")]
    frame = frame or LocalFrame(float(np.median(lon[order])), float(np.median(lat[order])))
    x, y = frame.to_local(lon[order], lat[order])
    t = time_s[order]
    given = np.full(len(order), np.nan) if heading_deg is None else heading_deg[order]
    sequences = []
    for start, end, reason in _gap_splits(x, y, t, opts):
        part = slice(start, end)
        track = _Part(order[part], reason, x[part], y[part], t[part], given[part])
        sequences.extend(_smoothed(track, opts))
    return sequences


def _gap_splits(
    x: FloatArray, y: FloatArray, t: FloatArray, opts: SequenceOptions
) -> list[tuple[int, int, SplitReason]]:
    step_m = np.hypot(np.diff(x), np.diff(y))
    step_s = np.diff(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        reasons = np.select(
            [
                step_s > opts.max_gap_s,
                step_m > opts.max_gap_m,
                step_m > opts.max_speed_mps * step_s + opts.jump_margin_m,
            ],
            ["time gap", "distance gap", "speed jump"],
            default="",
        )
    cuts = np.flatnonzero(reasons != "") + 1
    bounds = [0, *cuts.tolist(), len(x)]
    labels = ["start", *(cast(SplitReason, str(reasons[c - 1])) for c in cuts)]
    return [(bounds[i], bounds[i + 1], labels[i]) for i in range(len(labels))]


@dataclass(frozen=True)
class _Part:
    """Points between two gaps, in time order."""

    indices: IntArray
    reason: SplitReason
    x: FloatArray
    y: FloatArray
    t: FloatArray
    given_heading: FloatArray


def _smoothed(part: _Part, opts: SequenceOptions) -> list[StitchedSequence]:
    """Smooth a part, then cut it where the heading turns implausibly between moving points."""
    smooth = smooth_track(part.x, part.y, part.t, opts.smoothing_s)
    has_clock = clock(part.t) is not None
    heading, speed = headings(smooth, has_clock=has_clock, min_speed_mps=opts.min_speed_mps)
    judged = np.where(np.isfinite(part.given_heading), part.given_heading, heading)
    turn = np.abs((np.diff(judged) + 180.0) % 360.0 - 180.0)
    moving = speed >= opts.heading_split_speed_mps
    cuts = np.flatnonzero((turn > opts.max_heading_change_deg) & moving[1:] & moving[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(part.x)]
    sequences = []
    for i in range(len(bounds) - 1):
        cut = slice(bounds[i], bounds[i + 1])
        sequences.append(
            StitchedSequence(
                part.indices[cut],
                part.reason if i == 0 else "heading change",
                part.t[cut],
                part.x[cut],
                part.y[cut],
                smooth.x_m[cut],
                smooth.y_m[cut],
                heading[cut],
                speed[cut],
            )
        )
    return sequences
