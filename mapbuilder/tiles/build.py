"""Building imagery tiles from posed frames: which frames see which tile, then one tile at a time.

Frames are decoded on demand and kept in a bounded cache (`frames.DecodedFrames`): the frames
that see a tile were taken close together in time, so working through the tiles in the order
their first frame was taken decodes each frame about once while holding only a few in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from mapbuilder.tiles.bev import FramePose, FrameProjector, U8Image
from mapbuilder.tiles.frames import DecodedFrames
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.stitch import BlendSettings, blend


@dataclass(frozen=True)
class PosedFrame:
    """A frame's id, pose, and how to get its RGB pixels."""

    frame_id: str
    pose: FramePose
    load: Callable[[], U8Image]


def index_tiles(projector: FrameProjector, frames: Sequence[PosedFrame]) -> dict[Tile, list[int]]:
    """For every tile any frame sees, the indices of those frames, in frame order."""
    index: dict[Tile, list[int]] = defaultdict(list)
    for k, frame in enumerate(frames):
        for tile in projector.tiles(frame.pose):
            index[tile].append(k)
    return dict(index)


def build_tiles(
    projector: FrameProjector,
    frames: Sequence[PosedFrame],
    *,
    tiles: Iterable[Tile] | None = None,
    blend_settings: BlendSettings | None = None,
) -> Iterator[tuple[Tile, U8Image]]:
    """Each requested tile (default: every tile the frames see) blended from its frames (RGBA)."""
    index = index_tiles(projector, frames)
    wanted = list(index) if tiles is None else [t for t in tiles if t in index]
    wanted.sort(key=lambda tile: (index[tile][0], tile))
    cache = DecodedFrames()
    for tile in wanted:
        samples = [
            sample
            for k in index[tile]
            if (sample := projector.sample(cache.get(str(k), frames[k].load), frames[k].pose, tile))
            is not None
        ]
        if samples:
            yield tile, blend(samples, blend_settings)
