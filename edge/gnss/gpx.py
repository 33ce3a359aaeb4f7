"""GNSS fixes from a GPX 1.0/1.1 track log: every track point, in file order."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path

import gpxpy
import gpxpy.gpx

from edge.gnss.fix import BadRecord, Fix
from edge.gnss.log import GnssFileError, GnssLog, check_sequence, read_bytes

FIX_MODES = {"2d": 2, "3d": 3}
NO_FIX = "none"
HINT = "pass a GPX 1.0/1.1 track"


def read_gpx(path: Path) -> GnssLog:
    """Read the track points of a GPX file; points that cannot be used are returned as bad records.

    Raises GnssFileError when the file is missing or is not GPX at all.
    """
    gpx = _parse(path, read_bytes(path, "GPX"))
    source = str(path)
    fixes: list[Fix] = []
    locations: list[str] = []
    bad: list[BadRecord] = []
    for location, point in _points(gpx):
        fix_or_reason = _fix(point)
        if isinstance(fix_or_reason, str):
            bad.append(BadRecord(source, location, fix_or_reason))
        else:
            fixes.append(fix_or_reason)
            locations.append(location)
    ordered = check_sequence(fixes, source, locations=locations)
    return GnssLog(ordered.fixes, bad + ordered.bad)


def _parse(path: Path, data: bytes) -> gpxpy.gpx.GPX:
    """The parsed document, or a GnssFileError naming what is wrong with it."""
    try:
        root = _root_name(data)
        if root != "gpx":
            msg = f"{path} is not a GPX file (its root element is <{root}>, not <gpx>): {HINT}"
            raise GnssFileError(msg)
        return gpxpy.parse(data)
    except (ET.ParseError, gpxpy.gpx.GPXException) as error:
        msg = f"{path} is not a GPX file ({error}): {HINT}"
        raise GnssFileError(msg) from error


def _root_name(data: bytes) -> str:
    """The local name of the document's first element, read without parsing the rest."""
    for _, element in ET.iterparse(io.BytesIO(data), events=("start",)):
        return str(element.tag).rpartition("}")[2]
    msg = "no root element"
    raise ET.ParseError(msg)


def _points(gpx: gpxpy.gpx.GPX) -> list[tuple[str, gpxpy.gpx.GPXTrackPoint]]:
    """Every track point with its place in the file, in file order."""
    return [
        (f"track {t} segment {s} point {p}", point)
        for t, track in enumerate(gpx.tracks)
        for s, segment in enumerate(track.segments)
        for p, point in enumerate(segment.points)
    ]


def _fix(point: gpxpy.gpx.GPXTrackPoint) -> Fix | str:
    """The point as a fix, or why it cannot be one."""
    lat, lon = float(point.latitude), float(point.longitude)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return f"position is not a number (lat {lat}, lon {lon})"
    if abs(lat) > 90.0 or abs(lon) > 180.0:
        return f"position out of range (lat {lat}, lon {lon})"
    if point.time is None:
        return "no time (missing or unreadable <time>)"
    if point.type_of_gpx_fix == NO_FIX:
        return "receiver reported no fix (<fix>none</fix>)"
    time = point.time if point.time.tzinfo is not None else point.time.replace(tzinfo=UTC)
    return Fix(
        time=time.astimezone(UTC),
        lon=lon,
        lat=lat,
        altitude_m=_finite(point.elevation),
        speed_mps=_finite(point.speed),
        course_deg=_finite(point.course),
        hdop=_finite(point.horizontal_dilution),
        satellites=None if point.satellites is None else int(point.satellites),
        fix_mode=FIX_MODES.get(str(point.type_of_gpx_fix)),
    )


def _finite(value: float | None) -> float | None:
    """A finite float, or None for a value the point lacks or that is not a number."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)
