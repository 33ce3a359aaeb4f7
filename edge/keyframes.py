"""Which frames become keyframes: one per N metres travelled, none while standing, none near the
ends of a trip or inside a privacy zone, and none too blurred or too dark to map with."""

from __future__ import annotations

import itertools
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from edge.errors import EdgeError
from edge.track import Pose

U8Image = NDArray[np.uint8]
CHECK_WIDTH_PX = 480
TRIP_ENDS = "trip start or end"  # within `trim_m` of either end: never kept (home protection)


class PrivacyZoneError(EdgeError):
    """A privacy-zone file is missing or is not GeoJSON polygons."""


@dataclass(frozen=True)
class KeyframeRules:
    """Spacing, what counts as standing still, trip-end trimming and image checks."""

    spacing_m: float = 4.0
    # Standing: no keyframe where either fix around a frame is slower, and no distance while
    # standing (`moving`).
    stationary_below_mps: float = 0.8
    trim_m: float = 200.0
    # If the frame at a mark fails the image checks, later frames up to this far on may stand in.
    fallback_m: float = 2.0
    min_sharpness: float = 20.0  # variance of the Laplacian at 480 px width
    min_brightness: float = 30.0  # mean grey level, 0-255


@dataclass(frozen=True)
class Candidate:
    """A keyframe to take at `frame_index`, or at a later frame up to `last_index` if that one fails
    the image checks."""

    frame_index: int
    last_index: int
    travelled_m: float
    position: int  # order in the plan: the keyframe's index in its sequence


@dataclass
class Plan:
    """The candidates, how many frames were passed over for each reason, the trip's length and
    the distance travelled up to each frame (a fallback frame's own, for its record)."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    travelled_m: float = 0.0
    frame_travelled_m: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


class PrivacyZones:
    """Polygons (lon/lat) inside which nothing is kept, e.g. around the driver's home."""

    def __init__(self, geometry: BaseGeometry | None = None) -> None:
        self._geometry = geometry
        if geometry is not None:
            shapely.prepare(geometry)

    @classmethod
    def read(cls, path: Path) -> PrivacyZones:
        """The zones of a GeoJSON file of polygons; `PrivacyZoneError` for anything else, since
        a zone that silently covers nothing would leave the driver's home unprotected."""
        try:
            data = json.loads(path.read_bytes())
            features = data.get("features", [data]) if isinstance(data, dict) else []
            geometries = [f.get("geometry", f) for f in features]
        except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
            msg = f"cannot read privacy zones from {path} ({exc}): give a GeoJSON file of polygons"
            raise PrivacyZoneError(msg) from exc
        if not geometries:
            msg = (
                f"{path} holds no polygons (only Polygon/MultiPolygon features mark privacy zones)"
            )
            raise PrivacyZoneError(msg)
        shapes = [_zone(geometry, f"{path} feature {i}") for i, geometry in enumerate(geometries)]
        return cls(shapely.union_all(shapes))

    @property
    def geometry(self) -> BaseGeometry | None:
        """The union of the zones (None: no zones)."""
        return self._geometry

    def contains(self, lon: float, lat: float) -> bool:
        return self._geometry is not None and bool(shapely.contains_xy(self._geometry, lon, lat))


def _zone(geometry: object, where: str) -> BaseGeometry:
    """One feature's polygon, checked: readable, a non-empty valid polygon on the Earth."""
    hint = "give Polygon/MultiPolygon geometries of [lon, lat] rings whose edges do not cross"
    if not isinstance(geometry, dict):
        msg = f"{where} has no geometry object: {hint}"
        raise PrivacyZoneError(msg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN coordinates, refused below
            zone = shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, ShapelyError) as exc:
        msg = f"{where} is not a readable GeoJSON geometry ({exc}): {hint}"
        raise PrivacyZoneError(msg) from exc
    problem = _zone_problem(zone)
    if problem is not None:
        msg = f"{where} {problem}: {hint}"
        raise PrivacyZoneError(msg)
    return zone


def _zone_problem(zone: BaseGeometry) -> str | None:
    """Why a geometry cannot be a privacy zone, or None."""
    if zone.geom_type not in {"Polygon", "MultiPolygon"}:
        return f"is a {zone.geom_type} and holds no polygons (only they mark privacy zones)"
    if zone.is_empty:
        return "is empty"
    lon, lat = shapely.get_coordinates(zone).T
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return "has coordinates that are not numbers"
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        return "leaves the Earth (coordinates are [lon, lat] in degrees)"
    if not zone.is_valid:
        return f"is not a valid polygon ({explain_validity(zone)})"
    return None


def travelled(poses: list[Pose], stationary_below_mps: float) -> NDArray[np.float64]:
    """Distance travelled up to each pose, from speed over time (steady where positions wander):
    the trapezoid of the speeds of each two consecutive poses with usable GNSS where the vehicle
    was `moving`. It is also the odometry the server places keyframes along the road with.
    `liveplan` repeats it frame by frame in the same float operations."""
    t = np.array([p.t_s for p in poses])
    speed = np.array([p.speed_mps for p in poses])
    usable = np.array([p.problem is None for p in poses])
    counted = [moving(a, b, stationary_below_mps) for a, b in itertools.pairwise(poses)]
    step = np.diff(t) * (speed[1:] + speed[:-1]) / 2 * (usable[1:] & usable[:-1] & counted)
    return np.concatenate([[0.0], np.cumsum(step)])


def moving(before: Pose, after: Pose, stationary_below_mps: float) -> bool:
    """Whether the vehicle moved between two consecutive poses. Doppler speed reads near zero
    while standing, so there the stretch's own mean speed decides, and braking into a stop
    counts until the car nearly stands (judged by the fixes around, a second of braking would
    be lost at every stop); speed from positions alone wanders while standing, so there every
    fix around either pose must say moving."""
    if before.doppler and after.doppler:
        return (before.speed_mps + after.speed_mps) / 2 >= stationary_below_mps
    return min(before.slowest_mps, after.slowest_mps) >= stationary_below_mps


def plan_keyframes(
    poses: list[Pose], rules: KeyframeRules, zones: PrivacyZones | None = None
) -> Plan:
    """Candidates one `spacing_m` apart along the trip, with every skipped frame counted by reason."""
    plan = Plan()
    if not poses:
        return plan
    distance = travelled(poses, rules.stationary_below_mps)
    plan.travelled_m = float(distance[-1])
    plan.frame_travelled_m = distance
    end = plan.travelled_m - rules.trim_m
    next_mark = rules.trim_m
    for i, pose in enumerate(poses):
        reason = skip_reason(pose, float(distance[i]), end, next_mark, rules, zones)
        if reason:
            plan.skipped[reason] += 1
            continue
        last = int(np.searchsorted(distance, distance[i] + rules.fallback_m, side="right")) - 1
        plan.candidates.append(Candidate(i, max(i, last), float(distance[i]), len(plan.candidates)))
        next_mark = float(distance[i]) + rules.spacing_m
    return plan


def skip_reason(
    pose: Pose,
    distance: float,
    end: float,
    next_mark: float,
    rules: KeyframeRules,
    zones: PrivacyZones | None,
) -> str | None:
    """Why the frame at `pose`, `distance` along the trip, is not a candidate; None if it is."""
    if pose.problem:
        return f"GNSS: {pose.problem}"
    if pose.slowest_mps < rules.stationary_below_mps:
        return "stationary"
    if distance < rules.trim_m or distance > end:
        return TRIP_ENDS
    if distance < next_mark:
        return "between keyframes"
    if zones is not None and zones.contains(pose.lon, pose.lat):
        return "privacy zone"
    return None


def image_problem(image: U8Image, rules: KeyframeRules) -> str | None:
    """Why a frame is not worth keeping (too blurred, too dark), or None."""
    height, width = image.shape[:2]
    scale = min(1.0, CHECK_WIDTH_PX / width)
    small = cv2.resize(
        image,
        (max(1, round(width * scale)), max(1, round(height * scale))),
        interpolation=cv2.INTER_AREA,
    )
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    if float(grey.mean()) < rules.min_brightness:
        return "too dark"
    if float(cv2.Laplacian(grey, cv2.CV_64F).var()) < rules.min_sharpness:
        return "too blurred"
    return None
