"""Property tests of every parser of the edge app's files (hypothesis): NMEA and GPX logs,
calibrations, privacy zones and image EXIF times. Whatever the bytes, each gives its result or
its own clear error, never a crash; and a damaged record costs only itself."""

from __future__ import annotations

import io
import itertools
import json
import math
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pynmea2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from PIL.ExifTags import IFD, Base

from edge.capture.images import exif_time
from edge.gnss.fix import BadRecord, Fix
from edge.gnss.gpsd import GpsdParser
from edge.gnss.gpx import read_gpx
from edge.gnss.log import GnssFileError, GnssLog
from edge.gnss.nmea import read_nmea
from edge.keyframes import PrivacyZoneError, PrivacyZones
from roadswarm.edge_cli import read_camera, read_horizon
from roadswarm.errors import UserInputError
from tests.reliability.properties import JSON, SETTINGS

START = datetime(2026, 5, 17, 23, 59, 50, tzinfo=UTC)  # crosses midnight: dates must follow


def _in_file(data: bytes, suffix: str, read: Callable[[Path], Any]) -> Any:
    """`read` of a temporary file holding `data` (hypothesis reuses no pytest tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        return read(path)


def _check_log(log: GnssLog) -> None:
    """Fixes are finite, on the Earth, in strictly increasing UTC time."""
    times = [fix.time for fix in log.fixes]
    assert all(a < b for a, b in itertools.pairwise(times))
    for fix in log.fixes:
        assert fix.time.tzinfo is not None and fix.time.utcoffset() == timedelta(0)
        assert math.isfinite(fix.lat) and abs(fix.lat) <= 90
        assert math.isfinite(fix.lon) and abs(fix.lon) <= 180


def rmc(second: int) -> bytes:
    """A valid RMC sentence `second` seconds after START."""
    at = START + timedelta(seconds=second)
    fields = (f"{at:%H%M%S}.00", "A", "6010.200", "N", "02456.400", "E", "10.0", "45.0")
    return str(pynmea2.RMC("GP", "RMC", (*fields, f"{at:%d%m%y}", "", "", "A"))).encode()


def _damage(line: bytes, how: int, where: int, junk: bytes) -> bytes:
    """One kind of damage a serial link does: a byte changed, the line cut or junk inserted."""
    at = where % (len(line) + 1)
    if how == 0:
        return line[:at] + junk[:1] + line[at + 1 :]
    if how == 1:
        return line[:at]
    return line[:at] + junk + line[at:]


@st.composite
def damaged_nmea(draw: st.DrawFn) -> list[bytes]:
    """One RMC per second, some of them damaged."""
    lines = [rmc(second) for second in range(draw(st.integers(1, 20)))]
    for index in draw(st.lists(st.integers(0, len(lines) - 1), max_size=len(lines))):
        junk = draw(st.binary(min_size=1, max_size=8).filter(lambda b: b"\n" not in b))
        lines[index] = _damage(lines[index], draw(st.integers(0, 2)), draw(st.integers()), junk)
    return lines


@SETTINGS
@given(damaged_nmea())
def test_nmea_damaged_lines_cost_only_themselves(lines: list[bytes]) -> None:
    """Every non-blank line of an RMC log is a fix or a bad record: none is lost, none raises."""
    log = _in_file(b"\r\n".join(lines), ".nmea", read_nmea)
    _check_log(log)
    nonblank = [line for line in b"\n".join(lines).split(b"\n") if line.strip()]
    assert len(log.fixes) + len(log.bad) == len(nonblank)
    assert all(record.reason for record in log.bad)


@SETTINGS
@given(st.binary(max_size=2000))
def test_nmea_of_any_bytes_is_read(data: bytes) -> None:
    """Arbitrary bytes give a log (usually all bad records), never an exception."""
    _check_log(_in_file(data, ".nmea", read_nmea))


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12),
)
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones() | st.none()).map(lambda t: t.isoformat()), VALUES
)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@st.composite
def gpx_point(draw: st.DrawFn) -> str:
    """A track point whose attributes and children may each be missing, garbled or fine."""
    attributes = "".join(
        f' {name}="{_xml(draw(VALUES))}"' for name in ("lat", "lon") if draw(st.booleans())
    )
    names = ("time", "ele", "speed", "course", "hdop", "sat", "fix")
    children = "".join(
        f"<{name}>{_xml(draw(TIMES if name == 'time' else VALUES))}</{name}>"
        for name in names
        if draw(st.booleans())
    )
    return f"<trkpt{attributes}>{children}</trkpt>"


@SETTINGS
@given(st.lists(gpx_point(), max_size=12))
def test_gpx_points_cost_only_themselves(points: list[str]) -> None:
    """Each track point of a well-formed GPX file is a fix or a bad record, whatever its fields."""
    document = (
        '<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><trkseg>{''.join(points)}</trkseg></trk></gpx>"
    )
    log = _in_file(document.encode(), ".gpx", read_gpx)
    _check_log(log)
    assert len(log.fixes) + len(log.bad) == len(points)


@SETTINGS
@given(st.binary(max_size=2000))
def test_gpx_of_any_bytes_is_read_or_refused(data: bytes) -> None:
    """Arbitrary bytes give a log or a GnssFileError, never another exception."""
    try:
        _check_log(_in_file(data, ".gpx", read_gpx))
    except GnssFileError as error:
        assert "GPX" in str(error)


def _json_or_bytes() -> st.SearchStrategy[bytes]:
    return JSON.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=300)


CALIBRATION = {
    "width_px": 640,
    "height_px": 360,
    "camera_matrix": [[400.0, 0.0, 320.0], [0.0, 400.0, 180.0], [0.0, 0.0, 1.0]],
    "dist_coeffs": [0.0, 0.0, 0.0, 0.0, 0.0],
    "mount_height_m": 1.4,
    "pitch_deg": 6.0,
    "roll_deg": 0.0,
}


@SETTINGS
@given(
    _json_or_bytes()
    | st.builds(
        lambda key, value: {**CALIBRATION, key: value}, st.sampled_from(sorted(CALIBRATION)), JSON
    ).map(lambda value: json.dumps(value).encode())
)
def test_calibration_files_are_used_or_refused(data: bytes) -> None:
    """A calibration file gives a finite horizon and a camera, or a UserInputError naming it."""
    for read in (read_horizon, read_camera):
        try:
            result = _in_file(data, ".json", read)
        except UserInputError as error:
            assert "calibration" in str(error) and "\n" not in str(error)
            continue
        assert result is not None
        if read is read_horizon:
            assert math.isfinite(result)


RING = [[24.90, 60.10], [24.95, 60.10], [24.95, 60.15], [24.90, 60.15], [24.90, 60.10]]


NEAR = st.tuples(st.floats(24.85, 25.0), st.floats(60.05, 60.2)).map(list)
JUNK = st.lists(st.floats() | st.integers() | st.text(max_size=3), max_size=3)


@st.composite
def zone_documents(draw: st.DrawFn) -> Any:
    """GeoJSON-like documents: a polygon with corners swapped (a bow tie), moved nearby or
    garbled, as a geometry, a feature or a collection; or arbitrary JSON."""
    ring = [list(corner) for corner in RING[:4]]
    if draw(st.booleans()):
        ring[1], ring[2] = ring[2], ring[1]
    for corner in draw(st.lists(st.integers(0, 3), max_size=3)):
        ring[corner] = draw(st.one_of(NEAR, JUNK))
    kind = draw(st.sampled_from(["Polygon", "MultiPolygon", "Point"]))
    coordinates = [[*ring, ring[0]]]
    polygon = {
        "type": kind,
        "coordinates": [coordinates] if kind == "MultiPolygon" else coordinates,
    }
    feature = {"type": "Feature", "geometry": polygon}
    documents = [polygon, feature, {"type": "FeatureCollection", "features": [feature, feature]}]
    return draw(st.sampled_from(documents) | JSON)


@SETTINGS
@given(zone_documents())
def test_privacy_zones_are_valid_polygons_or_refused(document: Any) -> None:
    """A zone file gives valid polygons on the Earth (so `contains` is trustworthy), or a
    PrivacyZoneError; never a crash and never a zone that silently covers nothing."""
    data = json.dumps(document).encode()
    try:
        zones = _in_file(data, ".geojson", PrivacyZones.read)
    except PrivacyZoneError as error:
        assert "privacy" in str(error) or "feature" in str(error) or "polygons" in str(error)
        return
    geometry = zones.geometry
    assert geometry is not None and geometry.is_valid and not geometry.is_empty
    west, south, east, north = geometry.bounds
    assert -180 <= west <= east <= 180 and -90 <= south <= north <= 90
    assert geometry.area > 0
    inside = geometry.representative_point()  # on the boundary only for slivers, by rounding
    assert zones.contains(inside.x, inside.y) or geometry.boundary.distance(inside) < 1e-9


def _jpeg_with_exif(tags: dict[int, str]) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(IFD.Exif).update(tags)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


CALENDAR_ENDS = [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)]
EXIF_TEXT = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=24)


@SETTINGS
@given(
    (st.sampled_from(CALENDAR_ENDS) | st.datetimes()).map(
        lambda t: t.strftime("%Y:%m:%d %H:%M:%S").rjust(19, "0")
    )
    | EXIF_TEXT,
    EXIF_TEXT | st.sampled_from(["+05:00", "-14:00", "+23:59", "Z"]),
    EXIF_TEXT | st.integers(0, 10**30).map(str),
)
def test_exif_times_are_utc_or_a_reason(original: str, offset: str, subsec: str) -> None:
    """Any DateTimeOriginal, OffsetTimeOriginal and SubsecTimeOriginal give a UTC time or a reason."""
    tags: dict[int, str] = {
        Base.DateTimeOriginal: original,
        Base.OffsetTimeOriginal: offset,
        Base.SubsecTimeOriginal: subsec,
    }
    when = _in_file(_jpeg_with_exif(tags), ".jpg", exif_time)
    if isinstance(when, str):
        assert when
    else:
        assert when.utcoffset() == timedelta(0)


@pytest.mark.parametrize("cut", [0, 2, 20, 200])
def test_exif_of_a_damaged_file_is_a_reason(cut: int) -> None:
    """A JPEG cut short anywhere in its EXIF gives a reason, not an exception."""
    data = _jpeg_with_exif({Base.DateTimeOriginal: "2026:05:01 10:00:00"})
    assert isinstance(_in_file(data[:cut], ".jpg", exif_time), str)


GPSD_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]),
    st.text(max_size=10),
)
GPSD_FIELDS = {
    "class": st.sampled_from(["TPV", "SKY", "GST", "ERROR", "VERSION"]),
    "mode": st.integers(-1, 4) | st.booleans() | st.none(),
    "time": GPSD_TIMES,
    "lat": st.floats() | st.integers() | st.text(max_size=3),
    "lon": st.floats() | st.integers(),
    "uSat": st.floats() | st.integers(),
    "satellites": JSON,
    "jam": st.integers(-5, 300) | st.floats(),
}


@SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries({}, optional=GPSD_FIELDS).map(lambda m: json.dumps(m).encode())
        | st.binary(max_size=60)
        | st.just(b"DEEP"),
        max_size=25,
    )
)
def test_gpsd_lines_give_fixes_or_bad_records(lines: list[bytes]) -> None:
    """Whatever gpsd (or something pretending to be it) sends, each line gives fixes and bad
    records, never an exception; fixes are on the Earth and in increasing time."""
    parser = GpsdParser()
    deep = b"[" * 50_000  # JSON nested past the parser's recursion limit
    sent = [deep if line == b"DEEP" else line for line in lines]
    reports = [report for line in sent for report in parser.feed(line)] + parser.flush()
    fixes = [r for r in reports if isinstance(r, Fix)]
    _check_log(GnssLog(fixes, []))
    assert all(isinstance(r, Fix | BadRecord) for r in reports)
