"""Tests of `mapbuilder.tracks`: GPX and CSV tracks, and what is wrong with bad ones."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import gpxpy.gpx
import pytest

from mapbuilder.errors import TrackError
from mapbuilder.tracks import check_time_order, read_track

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


def _write_gpx(path: Path, points: list[tuple[float, float, datetime | None]]) -> Path:
    """A GPX file with one track segment of `points`."""
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    for lon, lat, time in points:
        segment.points.append(gpxpy.gpx.GPXTrackPoint(lat, lon, time=time))
    track.segments.append(segment)
    gpx.tracks.append(track)
    path.write_text(gpx.to_xml())
    return path


def test_gpx_points_with_utc_times(tmp_path: Path) -> None:
    """Every track point is read in order with its time in UTC."""
    path = _write_gpx(
        tmp_path / "t.gpx", [(24.94, 60.17, T0), (24.941, 60.17, T0.replace(second=1))]
    )
    points = read_track(path)
    assert [(p.lon, p.lat) for p in points] == [(24.94, 60.17), (24.941, 60.17)]
    assert points[1].time == T0.replace(second=1)


def test_csv_with_iso_or_posix_times_and_optional_columns(tmp_path: Path) -> None:
    """CSV columns lon, lat, time (ISO 8601 or POSIX seconds), heading and speed."""
    path = tmp_path / "t.csv"
    path.write_text(
        "lat,lon,time,heading,speed\n"
        f"60.17,24.94,{T0.isoformat()},90,12.5\n"
        f"60.17,24.941,{T0.timestamp() + 1},,\n"
    )
    first, second = read_track(path)
    assert (first.lon, first.lat, first.heading_deg, first.speed_mps) == (24.94, 60.17, 90.0, 12.5)
    assert second.time == T0.replace(second=1) and second.heading_deg is None


def test_csv_nan_coordinates_are_kept_as_nan(tmp_path: Path) -> None:
    """A row with NaN or empty coordinates stays a point (to be reported unmatched)."""
    path = tmp_path / "t.csv"
    path.write_text("lon,lat,time\nnan,60.17,0\n,60.17,1\n24.94,60.17,2\n")
    points = read_track(path)
    assert len(points) == 3 and math.isnan(points[0].lon) and math.isnan(points[1].lon)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("none.csv", None, "does not exist"),
        ("empty.csv", "lon,lat,time\n", "holds no points"),
        ("cols.csv", "x1,y1\n1,2\n", "no lon and lat columns"),
        ("num.csv", "lon,lat\n24.9,north\n", "line 2: lat 'north' is not a number"),
        ("time.csv", "lon,lat,time\n24.9,60.1,yesterday\n", "time 'yesterday' is not a number"),
        ("bad.gpx", "<gpx><trk><trkseg><trkpt lat='x'", "cannot read .* as GPX"),
        ("empty.gpx", '<gpx version="1.1" creator="t"></gpx>', "holds no points"),
    ],
)
def test_bad_tracks_say_what_is_wrong(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    """Missing, empty, column-less, non-numeric and broken files are TrackErrors with a reason."""
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(TrackError, match=message):
        read_track(path)


def test_times_going_backwards_are_refused(tmp_path: Path) -> None:
    """check_time_order names the first point whose time goes backwards."""
    path = _write_gpx(
        tmp_path / "t.gpx",
        [(24.94, 60.17, T0.replace(second=5)), (24.941, 60.17, T0), (24.942, 60.17, None)],
    )
    points = read_track(path)
    with pytest.raises(TrackError, match="time goes backwards at point 1"):
        check_time_order(points, path)
    check_time_order([points[0], points[2]], path)  # a point without time breaks nothing
