"""Tracks to match, from GPX (track and route points, via gpxpy) or CSV (`lon`, `lat`, optional
`time`, `heading`, `speed` columns), as `TrackPoint` records in file order."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gpxpy
import gpxpy.gpx

from mapbuilder.errors import TrackError
from mapbuilder.sequences import TrackPoint

LON_COLUMNS = ("lon", "lng", "longitude", "x")
LAT_COLUMNS = ("lat", "latitude", "y")


def read_track(path: Path) -> list[TrackPoint]:
    """The points of a GPX or CSV track; an empty or unreadable file is a TrackError."""
    if not path.is_file():
        msg = f"track {path} does not exist: pass a GPX or CSV (lon,lat,time) file"
        raise TrackError(msg)
    points = _read_csv(path) if path.suffix.lower() in {".csv", ".txt"} else _read_gpx(path)
    if not points:
        msg = f"track {path} holds no points: record a track or choose another file"
        raise TrackError(msg)
    return points


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # an offset that pushes year 1 or 9999 out of range
        msg = f"time {value.isoformat()} is out of range in UTC: fix the track's times"
        raise TrackError(msg) from exc


def _read_gpx(path: Path) -> list[TrackPoint]:
    try:
        gpx = gpxpy.parse(path.read_bytes())
    except (gpxpy.gpx.GPXException, ValueError, OSError) as exc:
        msg = f"cannot read {path} as GPX ({exc}): pass a GPX 1.0/1.1 file or a CSV"
        raise TrackError(msg) from exc
    points: list[Any] = [p for t in gpx.tracks for s in t.segments for p in s.points]
    points += [p for r in gpx.routes for p in r.points]
    return [
        TrackPoint(
            lon=float(p.longitude),
            lat=float(p.latitude),
            time=_utc(p.time),
            heading_deg=getattr(p, "course", None),
            speed_mps=p.speed,
        )
        for p in points
    ]


def _column(names: Sequence[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {n.strip().lower(): n for n in names}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _number(text: str | None, what: str, line: int, path: Path) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError as exc:
        msg = f"{path} line {line}: {what} {text!r} is not a number: fix or remove that row"
        raise TrackError(msg) from exc


def _time(text: str | None, line: int, path: Path) -> datetime | None:
    if text is None or not text.strip():
        return None
    try:
        return _utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        seconds = _number(text, "time", line, path)  # POSIX seconds are fine too
    try:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:  # NaN, or beyond the years 1 to 9999
        msg = f"{path} line {line}: time {text!r} is not a time: fix or remove that row"
        raise TrackError(msg) from exc


def _read_csv(path: Path) -> list[TrackPoint]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            names = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        msg = f"cannot read {path} as CSV ({exc}): pass a UTF-8 CSV with lon,lat,time columns"
        raise TrackError(msg) from exc
    lon_name, lat_name = _column(list(names), LON_COLUMNS), _column(list(names), LAT_COLUMNS)
    if rows and (lon_name is None or lat_name is None):
        msg = f"{path} has no lon and lat columns (found {', '.join(names)}): name them lon,lat"
        raise TrackError(msg)
    time_name = _column(list(names), ("time", "timestamp", "datetime"))
    heading_name = _column(list(names), ("heading", "heading_deg", "course"))
    speed_name = _column(list(names), ("speed", "speed_mps"))
    points = []
    for line, row in enumerate(rows, start=2):
        lon = _number(row.get(lon_name or ""), "lon", line, path)
        lat = _number(row.get(lat_name or ""), "lat", line, path)
        points.append(
            TrackPoint(
                lon=math.nan if lon is None else lon,
                lat=math.nan if lat is None else lat,
                time=_time(row.get(time_name or ""), line, path),
                heading_deg=_number(row.get(heading_name or ""), "heading", line, path),
                speed_mps=_number(row.get(speed_name or ""), "speed", line, path),
            )
        )
    return points


def check_time_order(points: Sequence[TrackPoint], path: Path) -> None:
    """Refuse a track whose times go backwards: its order (or its clock) cannot be trusted."""
    last: datetime | None = None
    for i, point in enumerate(points):
        if point.time is None:
            continue
        if last is not None and point.time < last:
            msg = (
                f"{path}: time goes backwards at point {i} ({point.time.isoformat()} after "
                f"{last.isoformat()}): sort the track by time"
            )
            raise TrackError(msg)
        last = point.time
