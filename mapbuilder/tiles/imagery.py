"""Imagery tiles of one block at the top zoom, stitched from the posed frames around it.

The frames are the catalog's posed frames within reach of the block (its box plus the farthest
ground a frame sees, the halo), taken in a fixed order (capture time, then id), each projected
with its own camera. Tiles are worked through in the order of their first frame, with decoded
frames taken from the builder's cache (`frames.DecodedFrames`), so each frame is decoded about
once per block, and once per process for blocks built one after another.
"""

from __future__ import annotations

import io
import logging
import math
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from ingest.catalog import Camera, Frame, FrameState
from ingest.db import Catalog
from ingest.storage import ObjectStore
from mapbuilder.camera import PinholeCamera
from mapbuilder.tiles.bev import BevSettings, FramePose, FrameProjector, U8Image
from mapbuilder.tiles.catalog import FramePoseRow
from mapbuilder.tiles.frames import DecodedFrames, FrameUnreadableError, read_frame
from mapbuilder.tiles.mercator import Tile, tile_bounds
from mapbuilder.tiles.stitch import BlendSettings, blend

log = logging.getLogger(__name__)
METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class BlockFrame:
    """A posed frame near a block: where its JPEG is, and the projector of its camera."""

    frame_id: str
    pose: FramePose
    object_key: str
    projector: FrameProjector


@dataclass(frozen=True)
class StitchedTile:
    """A tile's pixels (RGBA) and the ids of the frames blended into it."""

    tile: Tile
    rgba: U8Image
    frame_ids: tuple[str, ...]


def block_box(tiles: Collection[Tile]) -> tuple[float, float, float, float]:
    """(west, south, east, north) degrees around `tiles`."""
    bounds = [tile_bounds(t) for t in tiles]
    return (
        min(b[0] for b in bounds),
        min(b[1] for b in bounds),
        max(b[2] for b in bounds),
        max(b[3] for b in bounds),
    )


def frames_near(catalog: Catalog, tiles: Collection[Tile], bev: BevSettings) -> list[BlockFrame]:
    """The posed frames whose ground could touch `tiles`, by capture time then id."""
    west, south, east, north = block_box(tiles)
    # The farthest ground a frame contributes, from its camera: the halo around the block.
    halo_m = math.hypot(bev.far_m, bev.half_width_m) + 1.0
    dlat = halo_m / METRES_PER_DEGREE
    dlon = halo_m / (METRES_PER_DEGREE * max(math.cos(math.radians(north)), 1e-6))
    with catalog.session() as session:
        rows = session.execute(
            select(
                FramePoseRow.frame_id,
                FramePoseRow.lon,
                FramePoseRow.lat,
                FramePoseRow.heading_deg,
                Frame.capture_time,
                Frame.object_key,
                Camera.camera_id,
                Camera.calibration,
            )
            .join(Frame, Frame.frame_id == FramePoseRow.frame_id)
            .join(Camera, Camera.camera_id == FramePoseRow.camera_id)
            .where(
                # A frame quarantined after it was posed (its object went bad) leaves the map.
                Frame.state == FrameState.ACCEPTED,
                FramePoseRow.lat.between(south - dlat, north + dlat),
                FramePoseRow.lon.between(west - dlon, east + dlon),
            )
            .order_by(Frame.capture_time, FramePoseRow.frame_id)
        ).all()
    projectors: dict[str, FrameProjector] = {}
    frames = []
    for frame_id, lon, lat, heading, when, key, camera_id, calibration in rows:
        if camera_id not in projectors:
            projectors[camera_id] = _projector(calibration, bev)
        pose = FramePose(lon, lat, heading, when.timestamp())
        frames.append(BlockFrame(frame_id, pose, key, projectors[camera_id]))
    return frames


def _projector(calibration: dict[str, Any], bev: BevSettings) -> FrameProjector:
    """The projector of one camera (its calibration was checked when the pose was made)."""
    return FrameProjector(PinholeCamera.from_calibration(calibration), bev)


def stitch_tiles(
    store: ObjectStore,
    frames: list[BlockFrame],
    wanted: Collection[Tile],
    blend_settings: BlendSettings | None = None,
    decoded: DecodedFrames | None = None,
    unreadable: dict[str, FrameUnreadableError] | None = None,
) -> Iterator[StitchedTile]:
    """Each wanted tile some frame sees, blended from those frames (RGBA). Frames are decoded
    into `decoded` (a fresh cache when not given) and taken from it when already there; those
    that cannot be read are left out and put into `unreadable`, by frame id."""
    index: dict[Tile, list[int]] = defaultdict(list)
    for k, frame in enumerate(frames):
        for tile in frame.projector.tiles(frame.pose):
            if tile in wanted:
                index[tile].append(k)
    pixels = _Pixels(
        store, frames, decoded or DecodedFrames(), {} if unreadable is None else unreadable
    )
    for tile in sorted(index, key=lambda t: (index[t][0], t)):
        samples, used = [], []
        for k in index[tile]:
            image = pixels.get(k)
            if image is None:
                continue
            sample = frames[k].projector.sample(image, frames[k].pose, tile)
            if sample is not None:
                samples.append(sample)
                used.append(frames[k].frame_id)
        if samples:
            yield StitchedTile(tile, blend(samples, blend_settings), tuple(used))


class _Pixels:
    """The RGB ground rows of a block's frames from the decoded-frame cache; None for a frame that
    cannot be read (said once, and not tried again in this block)."""

    def __init__(
        self,
        store: ObjectStore,
        frames: list[BlockFrame],
        decoded: DecodedFrames,
        unreadable: dict[str, FrameUnreadableError],
    ) -> None:
        self.store = store
        self.frames = frames
        self.decoded = decoded
        self.unreadable = unreadable

    def get(self, k: int) -> U8Image | None:
        frame = self.frames[k]
        if frame.frame_id in self.unreadable:
            return None
        try:
            return self.decoded.get(_pixels_key(frame), partial(self._rgb, frame))
        except FrameUnreadableError as exc:
            # An accepted frame whose object is gone or damaged: the tile is built without it,
            # and the builder quarantines it.
            log.error("frame %s left out of its tiles: %s", frame.frame_id, exc)
            self.unreadable[frame.frame_id] = exc
            return None

    def _rgb(self, frame: BlockFrame) -> U8Image:
        # Only the rows the ground can reach are kept: about half a frame, so the cache holds
        # twice the frames.
        return frame.projector.ground_rows(read_frame(self.store, frame.frame_id, frame.object_key))


def _pixels_key(frame: BlockFrame) -> str:
    """What a frame's kept pixels are made of: its bytes (its id is their sha256) and the first
    row its camera's projector keeps."""
    return f"{frame.frame_id}:{frame.projector.first_ground_row}"


def encode_webp(rgba: U8Image, *, quality: int, method: int, lossless: bool = False) -> bytes:
    """WebP of a tile (alpha kept exactly): the same pixels and settings give the same bytes."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(
        buffer, "WEBP", quality=quality, method=method, lossless=lossless
    )
    return buffer.getvalue()


def decode_rgba(data: bytes) -> U8Image:
    """The RGBA pixels of an encoded tile."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"), np.uint8)
