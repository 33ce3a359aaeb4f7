"""A real GNSS track through sequence stitching: are its splits, speeds and headings plausible?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench._common import verdict
from mapbuilder.geo import LocalFrame
from mapbuilder.sequences import stitch_points
from mapbuilder.tracks import read_track

MAX_PLAUSIBLE_KMH = 130.0  # a car on the roads round a small Istrian town
MAX_HEADING_ERROR_DEG = 20.0  # median, against the direction of travel between fixes
MOVING_MPS = 5.0


def track_report(path: Path) -> dict[str, Any] | None:
    """Splits, speed and heading figures of the stitched track, with a plausibility verdict;
    None when the file is absent."""
    if not path.is_file():
        return None
    points = read_track(path)
    sequences = stitch_points(points)
    lon = np.array([p.lon for p in points])
    lat = np.array([p.lat for p in points])
    t = np.array([p.time.timestamp() if p.time else np.nan for p in points])
    x, y = LocalFrame(float(lon.mean()), float(lat.mean())).to_local(lon, lat)
    speeds, errors = [], []
    for seq in sequences:
        i = seq.indices
        speeds.append(seq.speed_mps * 3.6)
        # Direction of travel from the fixes before and after (raw, not smoothed).
        dx, dy = x[i][2:] - x[i][:-2], y[i][2:] - y[i][:-2]
        bearing = np.degrees(np.arctan2(dx, dy)) % 360.0
        moving = seq.speed_mps[1:-1] >= MOVING_MPS
        diff = np.abs((seq.heading_deg[1:-1] - bearing + 180.0) % 360.0 - 180.0)
        errors.append(diff[moving])
    speed = np.concatenate(speeds)
    error = np.concatenate(errors)
    gaps = np.diff(t)
    report: dict[str, Any] = {
        "file": str(path),
        "points": len(points),
        "duration_s": float(np.nansum(gaps)),
        "interval_s": {"median": float(np.median(gaps)), "max": float(np.max(gaps))},
        "sequences": [
            {"points": len(s.indices), "starts_because": s.starts_because} for s in sequences
        ],
        "speed_kmh": {
            q: round(float(np.percentile(speed, p)), 1)
            for q, p in (("p50", 50), ("p95", 95), ("max", 100))
        },
        "heading_error_deg": {
            "moving_points": int(error.size),
            "median": round(float(np.median(error)), 1) if error.size else None,
            "p95": round(float(np.percentile(error, 95)), 1) if error.size else None,
        },
    }
    plausible = (
        report["speed_kmh"]["max"] <= MAX_PLAUSIBLE_KMH
        and error.size > 0
        and float(np.median(error)) <= MAX_HEADING_ERROR_DEG
        and all(s["starts_because"] in {"start", "time gap"} for s in report["sequences"])
    )
    report["verdict"] = verdict(plausible)
    return report
