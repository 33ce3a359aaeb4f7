"""What is painted on the ground: road surfaces and markings as polygons in local metres.

The layers are derived from the road network and the seed alone, so they are rebuilt on load rather
than stored, and every chunk of the orthophoto draws the polygons that touch it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from roadswarm.sim.texture import ASPHALT, PAINT, PAVEMENT, Material

LocalXY = tuple[tuple[float, float], ...]

MARKING_WIDTH_M = 0.12
EDGE_INSET_M = 0.35
DASH_M, GAP_M = 3.0, 6.0
SIDEWALK_M = 2.5
CROSSWALK_DEPTH_M = 3.0
STRIPE_M = 0.5


@dataclass(frozen=True)
class RoadShape:
    """A segment as the painter needs it: its centreline in local metres and its surface."""

    segment_id: str
    road_class: str
    oneway: bool
    lanes: int
    width_m: float
    start_node: int
    end_node: int
    xy: LocalXY

    @property
    def line(self) -> LineString:
        return LineString(self.xy)

    @property
    def has_sidewalk(self) -> bool:
        return self.road_class not in {"service", "motorway", "motorway_link", "trunk_link"}


@dataclass
class PaintLayers:
    """Polygons per material, in drawing order (later layers are painted over earlier ones)."""

    layers: list[tuple[Material, list[Polygon]]] = field(default_factory=list)

    def add(self, material: Material, geometry: BaseGeometry) -> None:
        polygons = list(_polygons(geometry))
        if not self.layers or self.layers[-1][0] != material:
            self.layers.append((material, []))
        self.layers[-1][1].extend(polygons)


def _polygons(geometry: BaseGeometry) -> Iterator[Polygon]:
    if isinstance(geometry, Polygon):
        if not geometry.is_empty:
            yield geometry
        return
    for part in getattr(geometry, "geoms", []):
        yield from _polygons(part)


def intersection_nodes(roads: list[RoadShape]) -> dict[int, tuple[float, float, float]]:
    """Nodes where three or more segment ends meet: position and the radius of their junction box."""
    ends: dict[int, list[tuple[tuple[float, float], float]]] = defaultdict(list)
    for road in roads:
        ends[road.start_node].append((road.xy[0], road.width_m))
        ends[road.end_node].append((road.xy[-1], road.width_m))
    return {
        node: (items[0][0][0], items[0][0][1], max(w for _, w in items) / 2 + 1.0)
        for node, items in ends.items()
        if len(items) >= 3
    }


def build_paint(roads: list[RoadShape], seed: int) -> PaintLayers:
    """Sidewalks, asphalt, then every marking: edge, centre and lane lines, stop lines, crosswalks,
    arrows."""
    rng = random.Random(seed)
    junctions = intersection_nodes(roads)
    junction_zone = shapely.union_all(
        [Point(x, y).buffer(r) for x, y, r in junctions.values()] or [Polygon()]
    )
    paint = PaintLayers()
    sidewalks = [r.line.buffer(r.width_m / 2 + SIDEWALK_M) for r in roads if r.has_sidewalk]
    paint.add(PAVEMENT, shapely.union_all(sidewalks) if sidewalks else Polygon())
    paint.add(ASPHALT, shapely.union_all([r.line.buffer(r.width_m / 2) for r in roads]))
    for road in roads:
        paint.add(PAINT, _line_markings(road).difference(junction_zone))
        for node, at_end in ((road.start_node, False), (road.end_node, True)):
            if node in junctions:
                paint.add(PAINT, _approach_markings(road, junctions[node][2], at_end, rng))
    return paint


def _line_markings(road: RoadShape) -> BaseGeometry:
    line = road.line
    pieces: list[BaseGeometry] = []
    if road.width_m >= 5.0:
        for side in (1, -1):
            offset = line.offset_curve(side * (road.width_m / 2 - EDGE_INSET_M))
            pieces.append(offset.buffer(MARKING_WIDTH_M, cap_style="flat"))
    for offset_m, dashed in _lane_dividers(road):
        divider = line.offset_curve(offset_m) if offset_m else line
        pieces.extend(_dashes(divider) if dashed else [divider.buffer(MARKING_WIDTH_M / 2)])
    return shapely.union_all(pieces) if pieces else Polygon()


def _lane_dividers(road: RoadShape) -> list[tuple[float, bool]]:
    """Offsets (left positive) of the lines between lanes, and whether each is dashed."""
    if road.lanes < 2:
        return []
    lane_w = road.width_m / road.lanes
    offsets = [road.width_m / 2 - i * lane_w for i in range(1, road.lanes)]
    centre = 0.0 if not road.oneway and road.lanes % 2 == 0 else None
    # A two-way road's centre line is dashed on two-lane roads and solid on wider ones.
    return [(o, not (abs(o) < 1e-6 and centre is not None and road.lanes > 2)) for o in offsets]


def _dashes(line: BaseGeometry) -> list[BaseGeometry]:
    """Dashes along a line; an offset curve can fall apart into several lines at sharp bends."""
    pieces: list[BaseGeometry] = []
    for part in getattr(line, "geoms", [line]):
        start = GAP_M / 2
        while start + DASH_M <= part.length:
            dash = substring(part, start, start + DASH_M)
            pieces.append(dash.buffer(MARKING_WIDTH_M / 2, cap_style="flat"))
            start += DASH_M + GAP_M
    return pieces


def _approach_markings(
    road: RoadShape, junction_radius_m: float, at_end: bool, rng: random.Random
) -> BaseGeometry:
    """Crosswalk, stop line and arrow where a road meets a junction (right-hand traffic)."""
    line = road.line if at_end else LineString(road.xy[::-1])  # pointing into the junction
    length = float(line.length)
    if road.road_class == "service" or length < junction_radius_m + CROSSWALK_DEPTH_M + 8.0:
        return Polygon()
    edge = length - junction_radius_m
    pieces: list[BaseGeometry] = []
    if rng.random() < 0.7:
        pieces.extend(_crosswalk(line, edge - CROSSWALK_DEPTH_M, road.width_m))
        edge -= CROSSWALK_DEPTH_M + 0.8
    if road.oneway and not at_end:  # traffic only leaves the junction here
        return shapely.union_all(pieces)
    right_m, left_m = -road.width_m / 2, (road.width_m / 2 if road.oneway else 0.0)
    pieces.append(_cross_bar(line, edge - 0.3, right_m, left_m).buffer(0.2, cap_style="flat"))
    if edge > 16.0:
        pieces.append(_arrow(line, edge - 9.0, (right_m + left_m) / 2))
    return shapely.union_all(pieces)


def _frame_at(line: LineString, distance: float) -> tuple[Point, float, float]:
    """Point on the line and the unit direction of travel there."""
    a = line.interpolate(max(0.0, distance - 0.5))
    b = line.interpolate(min(float(line.length), distance + 0.5))
    dx, dy = b.x - a.x, b.y - a.y
    norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    return line.interpolate(distance), dx / norm, dy / norm


def _cross_bar(line: LineString, distance: float, left_m: float, right_m: float) -> LineString:
    """A line across the road at `distance`, from `left_m` to `right_m` (left positive)."""
    p, ux, uy = _frame_at(line, distance)
    nx, ny = -uy, ux
    return LineString(
        [(p.x + nx * left_m, p.y + ny * left_m), (p.x + nx * right_m, p.y + ny * right_m)]
    )


def _crosswalk(line: LineString, distance: float, width_m: float) -> list[BaseGeometry]:
    p, ux, uy = _frame_at(line, distance + CROSSWALK_DEPTH_M / 2)
    nx, ny = -uy, ux
    stripes: list[BaseGeometry] = []
    across = -width_m / 2 + STRIPE_M / 2
    while across <= width_m / 2 - STRIPE_M / 2:
        cx, cy = p.x + nx * across, p.y + ny * across
        half_u, half_n = CROSSWALK_DEPTH_M / 2, STRIPE_M / 2
        stripes.append(
            Polygon(
                [
                    (cx - ux * half_u - nx * half_n, cy - uy * half_u - ny * half_n),
                    (cx + ux * half_u - nx * half_n, cy + uy * half_u - ny * half_n),
                    (cx + ux * half_u + nx * half_n, cy + uy * half_u + ny * half_n),
                    (cx - ux * half_u + nx * half_n, cy - uy * half_u + ny * half_n),
                ]
            )
        )
        across += 2 * STRIPE_M
    return stripes


# A straight-ahead arrow, 5 m long, in (along, left) metres with its tip at along = 5.
ARROW_OUTLINE = (
    (0.0, -0.15),
    (3.2, -0.15),
    (3.2, -0.5),
    (5.0, 0.0),
    (3.2, 0.5),
    (3.2, 0.15),
    (0.0, 0.15),
)


def _arrow(line: LineString, distance: float, left_m: float) -> Polygon:
    p, ux, uy = _frame_at(line, max(distance, 0.0))
    nx, ny = -uy, ux
    return Polygon(
        [
            (p.x + ux * a + nx * (left_m + b), p.y + uy * a + ny * (left_m + b))
            for a, b in ARROW_OUTLINE
        ]
    )
