"""The polygon of an imagery query: GeoJSON in, checked (valid, on Earth, not too large)."""

from __future__ import annotations

from typing import Any

from pyproj import Geod
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from mapbuilder.serve.errors import BadQueryError

_GEOD = Geod(ellps="WGS84")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


def query_polygon(geojson: dict[str, Any], *, max_area_km2: float) -> BaseGeometry:
    """A shapely polygon from a GeoJSON Polygon or MultiPolygon, or `BadQueryError` saying why not."""
    if geojson.get("type") not in POLYGON_TYPES:
        msg = f"geometry must be a GeoJSON Polygon or MultiPolygon, not {geojson.get('type')!r}"
        raise BadQueryError(msg)
    try:
        polygon = shape(geojson)
    except (ValueError, TypeError, IndexError, AttributeError, KeyError, ShapelyError) as exc:
        msg = f"geometry is not readable GeoJSON ({exc}): give rings of [lon, lat] pairs, closed"
        raise BadQueryError(msg) from exc
    _check_polygon(polygon, max_area_km2)
    return polygon


def _check_polygon(polygon: BaseGeometry, max_area_km2: float) -> None:
    if polygon.is_empty:
        msg = "geometry is empty: give a polygon with at least three distinct corners"
        raise BadQueryError(msg)
    west, south, east, north = polygon.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        msg = "geometry leaves the Earth: coordinates are [lon, lat] with lon in -180..180 and lat in -90..90"
        raise BadQueryError(msg)
    if not polygon.is_valid:
        msg = f"geometry is not a valid polygon ({explain_validity(polygon)}): fix the ring"
        raise BadQueryError(msg)
    area_km2 = abs(_GEOD.geometry_area_perimeter(polygon)[0]) / 1e6
    if area_km2 > max_area_km2:
        msg = f"the polygon covers {area_km2:.1f} km², more than the {max_area_km2:g} km² a query may: split it into smaller polygons"
        raise BadQueryError(msg)
