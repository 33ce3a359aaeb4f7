"""GNSS fixes from a GPX 1.0/1.1 track log: every track point, in file order.

Points are read one by one from the XML (not through gpxpy, which refuses the whole file for one
garbled field), so a point with an unreadable value becomes a bad record and the rest of the
drive is kept. Python's expat refuses entity expansion bombs and loads no external entities.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from edge.gnss.fix import BadRecord, Fix
from edge.gnss.log import GnssFileError, GnssLog, check_sequence, read_bytes

FIX_MODES = {"2d": 2, "3d": 3}
FIX_TYPES = frozenset({"none", "2d", "3d", "dgps", "pps"})
NO_FIX = "none"
HINT = "pass a GPX 1.0/1.1 track"


class BadPointError(ValueError):
    """A track point that cannot be a fix; the message says why."""


def read_gpx(path: Path) -> GnssLog:
    """Read the track points of a GPX file; points that cannot be used are returned as bad records.

    Raises GnssFileError when the file is missing or is not GPX at all.
    """
    root = _parse(path, read_bytes(path, "GPX"))
    source = str(path)
    fixes: list[Fix] = []
    locations: list[str] = []
    bad: list[BadRecord] = []
    for location, point in _points(root):
        try:
            fixes.append(_fix(point))
            locations.append(location)
        except BadPointError as why:
            bad.append(BadRecord(source, location, str(why)))
    ordered = check_sequence(fixes, source, locations=locations)
    return GnssLog(ordered.fixes, bad + ordered.bad)


def _parse(path: Path, data: bytes) -> ET.Element:
    """The document's root element, or a GnssFileError naming what is wrong with it."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        msg = f"{path} is not a GPX file ({error}): {HINT}"
        raise GnssFileError(msg) from error
    if _name(root) != "gpx":
        msg = f"{path} is not a GPX file (its root element is <{_name(root)}>, not <gpx>): {HINT}"
        raise GnssFileError(msg)
    return root


def _name(element: ET.Element) -> str:
    """An element's local name, without its namespace."""
    return str(element.tag).rpartition("}")[2]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _name(child) == name]


def _points(root: ET.Element) -> Iterator[tuple[str, ET.Element]]:
    """Every track point with its place in the file, in file order."""
    for t, track in enumerate(_children(root, "trk")):
        for s, segment in enumerate(_children(track, "trkseg")):
            for p, point in enumerate(_children(segment, "trkpt")):
                yield f"track {t} segment {s} point {p}", point


def _text(point: ET.Element, name: str) -> str | None:
    """The stripped text of the point's child element `name`, None when it has none."""
    found = _children(point, name)
    return (found[0].text or "").strip() if found else None


def _fix(point: ET.Element) -> Fix:
    """The point as a fix; BadPointError says why it cannot be one."""
    lat, lon = _coordinate(point, "lat"), _coordinate(point, "lon")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise BadPointError(f"position is not a number (lat {lat}, lon {lon})")
    if abs(lat) > 90.0 or abs(lon) > 180.0:
        raise BadPointError(f"position out of range (lat {lat}, lon {lon})")
    time = _time(_text(point, "time"))
    fix_type = _text(point, "fix")
    if fix_type is not None and fix_type not in FIX_TYPES:
        raise BadPointError(f"<fix> {fix_type[:40]!r} is not one of {', '.join(sorted(FIX_TYPES))}")
    if fix_type == NO_FIX:
        raise BadPointError("receiver reported no fix (<fix>none</fix>)")
    return Fix(
        time=time,
        lon=lon,
        lat=lat,
        altitude_m=_number(point, "ele"),
        speed_mps=_number(point, "speed"),
        course_deg=_number(point, "course"),
        hdop=_number(point, "hdop"),
        satellites=_satellites(_text(point, "sat")),
        fix_mode=FIX_MODES.get(fix_type or ""),
    )


def _coordinate(point: ET.Element, name: str) -> float:
    text = point.get(name)
    if text is None:
        raise BadPointError(f"no {name} attribute")
    try:
        return float(text)
    except ValueError:
        raise BadPointError(f"{name} {text[:40]!r} is not a number") from None


def _time(text: str | None) -> datetime:
    """The point's time in UTC (a time without an offset is taken as UTC)."""
    if not text:
        raise BadPointError("no time (missing <time>)")
    try:
        when = datetime.fromisoformat(text)
        return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise BadPointError(f"<time> {text[:40]!r} is not an ISO 8601 time") from None
    except OverflowError:  # an offset that pushes year 1 or 9999 out of range
        raise BadPointError(f"<time> {text[:40]!r} is out of range") from None


def _number(point: ET.Element, name: str) -> float | None:
    """An optional number: None when absent or not finite, BadPointError when it is not a number."""
    text = _text(point, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadPointError(f"<{name}> {text[:40]!r} is not a number") from None
    return value if math.isfinite(value) else None


def _satellites(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        raise BadPointError(f"<sat> {text[:40]!r} is not a count of satellites")
    return int(text)
