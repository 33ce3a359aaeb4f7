"""The ground-truth orthophoto: a north-up raster in local metres, stored as chunks on disk.

Chunks are rendered on first use and kept as files, so a city-sized world at 5 cm/px never needs to be
held in memory, and any bounding box can be read back by loading only the chunks it touches.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon

from roadswarm.files import write_atomically
from roadswarm.sim.paint import PaintLayers
from roadswarm.sim.texture import GRASS, Material, U8Image, material_texture

BBoxM = tuple[float, float, float, float]
SUBPIXEL_BITS = 4
# Anti-aliased fills under-cover the outermost pixels of their canvas: draw on a canvas this much
# larger than the chunk and crop, so a polygon edge crossing a chunk border leaves no seam.
PAD_PX = 4
# Float error must not turn a box edge that falls on a pixel edge into one more pixel.
EDGE_EPS_PX = 1e-6
JPEG_QUALITY = 95


@dataclass(frozen=True)
class RasterGrid:
    """Where global pixel (0, 0) lies and how big pixels and chunks are."""

    origin_x_m: float  # west edge
    origin_y_m: float  # north edge
    resolution_m: float
    chunk_px: int

    def to_pixel(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Global pixel coordinates (column, row) of a local point; pixel centres at +0.5."""
        return (x_m - self.origin_x_m) / self.resolution_m, (
            self.origin_y_m - y_m
        ) / self.resolution_m

    def to_metres(self, col: float, row: float) -> tuple[float, float]:
        return self.origin_x_m + col * self.resolution_m, self.origin_y_m - row * self.resolution_m


class ChunkPainter:
    """Renders one chunk from the paint layers: grass, then each material through its polygons."""

    def __init__(self, grid: RasterGrid, paint: PaintLayers, seed: int) -> None:
        self.grid = grid
        self.seed = seed
        self._layers = [(m, shapely.STRtree(polys), polys) for m, polys in paint.layers if polys]

    def render(self, cx: int, cy: int) -> U8Image:
        size = self.grid.chunk_px
        x0, y0 = cx * size, cy * size
        image = material_texture(GRASS, x0, y0, size, size, self.seed)
        west, north = self.grid.to_metres(x0, y0)
        east, south = self.grid.to_metres(x0 + size, y0 + size)
        margin = (PAD_PX + 2) * self.grid.resolution_m
        window = (west - margin, south - margin, east + margin, north + margin)
        for material, tree, polygons in self._layers:
            hits = tree.query(shapely.box(*window))
            if len(hits):
                self._paint(image, material, [polygons[i] for i in hits], window, (x0, y0))
        return image

    def _paint(
        self,
        image: U8Image,
        material: Material,
        polygons: list[Polygon],
        window: BBoxM,
        origin_px: tuple[int, int],
    ) -> None:
        size = self.grid.chunk_px
        canvas = np.zeros((size + 2 * PAD_PX, size + 2 * PAD_PX), np.uint8)
        canvas_origin = (origin_px[0] - PAD_PX, origin_px[1] - PAD_PX)
        for polygon in polygons:
            clipped = shapely.clip_by_rect(polygon, *window)
            for part in getattr(clipped, "geoms", [clipped]):
                if isinstance(part, Polygon) and not part.is_empty:
                    rings = [part.exterior, *part.interiors]
                    cv2.fillPoly(
                        canvas,
                        [self._ring_px(ring.coords, canvas_origin) for ring in rings],
                        255,
                        lineType=cv2.LINE_AA,
                        shift=SUBPIXEL_BITS,
                    )
        mask = canvas[PAD_PX:-PAD_PX, PAD_PX:-PAD_PX]
        if not mask.any():
            return
        texture = material_texture(material, origin_px[0], origin_px[1], size, size, self.seed)
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        image[:] = (image * (1 - alpha) + texture * alpha + 0.5).astype(np.uint8)

    def _ring_px(self, coords: object, origin_px: tuple[int, int]) -> np.ndarray:
        xy = np.asarray(coords, dtype=np.float64)[:, :2]
        col = (xy[:, 0] - self.grid.origin_x_m) / self.grid.resolution_m - origin_px[0]
        row = (self.grid.origin_y_m - xy[:, 1]) / self.grid.resolution_m - origin_px[1]
        # Pixel centres sit at +0.5, and fillPoly draws integer coordinates at pixel centres.
        scaled = np.stack([col - 0.5, row - 0.5], axis=1) * (1 << SUBPIXEL_BITS)
        return np.round(scaled).astype(np.int32)


class Orthophoto:
    """Chunked orthophoto of a world: read any window, rendering and caching missing chunks."""

    def __init__(self, chunk_dir: Path, painter: ChunkPainter, *, cache_chunks: int = 256) -> None:
        self.chunk_dir = chunk_dir
        self.grid = painter.grid
        self._painter = painter
        self._cache: OrderedDict[tuple[int, int], U8Image] = OrderedDict()
        self._cache_chunks = cache_chunks

    def chunk(self, cx: int, cy: int) -> U8Image:
        """One chunk, from memory, from disk, or freshly rendered and saved."""
        key = (cx, cy)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = self.chunk_dir / f"{cx}_{cy}.jpg"
        stored = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.exists() else None
        if stored is None:
            # Keep what the file holds, not the lossless render, so every read sees the same pixels.
            image = _write_jpeg_atomically(path, self._painter.render(cx, cy))
        else:
            image = np.asarray(stored, dtype=np.uint8)
        self._cache[key] = image
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return image

    def read_pixels(self, col0: int, row0: int, width: int, height: int) -> U8Image:
        """The window of global pixels [col0, col0 + width) x [row0, row0 + height)."""
        size = self.grid.chunk_px
        out = np.empty((height, width, 3), np.uint8)
        for cy in range(row0 // size, (row0 + height - 1) // size + 1):
            for cx in range(col0 // size, (col0 + width - 1) // size + 1):
                chunk = self.chunk(cx, cy)
                c0, r0 = max(col0, cx * size), max(row0, cy * size)
                c1, r1 = min(col0 + width, (cx + 1) * size), min(row0 + height, (cy + 1) * size)
                out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = chunk[
                    r0 - cy * size : r1 - cy * size, c0 - cx * size : c1 - cx * size
                ]
        return out

    def read_bbox(self, bbox_m: BBoxM) -> tuple[U8Image, tuple[float, float]]:
        """The pixels covering a (west, south, east, north) box and the metres of its top-left corner."""
        west, south, east, north = bbox_m
        col0, row0 = self.grid.to_pixel(west, north)
        col1, row1 = self.grid.to_pixel(east, south)
        c0, r0 = int(np.floor(col0 + EDGE_EPS_PX)), int(np.floor(row0 + EDGE_EPS_PX))
        c1, r1 = int(np.ceil(col1 - EDGE_EPS_PX)), int(np.ceil(row1 - EDGE_EPS_PX))
        image = self.read_pixels(c0, r0, c1 - c0, r1 - r0)
        return image, self.grid.to_metres(c0, r0)


def _write_jpeg_atomically(path: Path, image: U8Image) -> U8Image:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        msg = f"cannot encode chunk {path.name}"
        raise OSError(msg)
    write_atomically(path, encoded.tobytes())
    return np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), dtype=np.uint8)
