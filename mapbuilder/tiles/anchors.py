"""Aligning a sequence to the map: registrations with frames of other sequences already refined.

A sequence refined alone keeps its receiver's error along a straight road (a GNSS bias of a
metre or two): two drives down one street would leave doubled lane markings where the tiles
blend them. Once one drive is in the map, the next is registered with it, each frame with the
nearest map frame within `Gates.cross_radius_m` that looks the same way, and solved with the map
frames' poses held fixed (`posegraph.Anchored`). A later drive lines up with the map rather
than pulling it: the tiles built before stay where they are, and the newer imagery blended over
them agrees with them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mapbuilder.camera import CameraLike
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.constraints import (
    VIEW_CACHE,
    Gates,
    accepted,
    nearest_alike,
    relative_motion,
)
from mapbuilder.tiles.frames import FrameUnreadableError
from mapbuilder.tiles.posegraph import Anchored
from mapbuilder.tiles.register import (
    GroundGrid,
    GroundView,
    GroundViewer,
    RelativeMotion,
    register_pair,
)

FloatArray = NDArray[np.float64]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anchor:
    """A frame of another sequence, already refined: `frame.pose` is held fixed. Anchors of one
    `camera_id` share one camera and its ground viewer."""

    frame: PosedFrame
    camera: CameraLike
    camera_id: str


class _AnchorViews:
    """Ground views of anchor frames, each through its own camera's viewer on `grid`; the
    most recently used `VIEW_CACHE` are kept (neighbouring frames share their anchors). An
    anchor whose frame cannot be read, or whose camera gives no viewer, is left out: the map's
    damage is not this sequence's."""

    def __init__(self, anchors: Sequence[Anchor], grid: GroundGrid) -> None:
        self.anchors = anchors
        self.grid = grid
        self._viewers: dict[str, GroundViewer | None] = {}
        self._views: OrderedDict[int, GroundView] = OrderedDict()

    def view(self, k: int) -> GroundView | None:
        """Anchor k's ground view, or None when it cannot be had."""
        if k not in self._views:
            anchor = self.anchors[k]
            viewer = self._viewer(anchor)
            if viewer is None:
                return None
            try:
                pixels = anchor.frame.load()
            except FrameUnreadableError as exc:
                log.warning(
                    "map frame %s left out of the alignment: %s", anchor.frame.frame_id, exc
                )
                return None
            self._views[k] = viewer.view(pixels)
            if len(self._views) > VIEW_CACHE:
                self._views.popitem(last=False)
        self._views.move_to_end(k)
        return self._views[k]

    def _viewer(self, anchor: Anchor) -> GroundViewer | None:
        if anchor.camera_id not in self._viewers:
            try:
                self._viewers[anchor.camera_id] = GroundViewer(anchor.camera, self.grid)
            except (cv2.error, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                log.warning("map frames of camera %s left out: %s", anchor.camera_id, exc)
                self._viewers[anchor.camera_id] = None
        return self._viewers[anchor.camera_id]


def anchor_constraints(
    frames: Sequence[PosedFrame],
    poses: FloatArray,
    anchors: Sequence[Anchor],
    anchor_poses: FloatArray,
    viewer: GroundViewer,
    gates: Gates,
) -> tuple[Anchored, int]:
    """Each frame (local x, y, heading rows in `poses`, refined without anchors) registered with
    the nearest anchor (rows of `anchor_poses`, the same local frame) that qualifies and can be
    viewed; those passing the gates, and how many were tried."""
    views = _AnchorViews(anchors, viewer.grid)
    usable = np.array(anchor_poses, np.float64)  # rows of anchors that cannot be viewed go NaN
    found: list[tuple[int, int, RelativeMotion]] = []
    tried = 0
    for j in range(len(frames)):
        nearest, anchor_view = _viewable_nearest(views, usable, poses[j], gates)
        if nearest is None or anchor_view is None:
            continue
        tried += 1
        guess = relative_motion(np.stack([usable[nearest], poses[j]]), 0, 1)
        motion = register_pair(
            viewer.grid, anchor_view, viewer.view(frames[j].load()), guess, near=True
        )
        if accepted(motion, guess, gates.min_response, gates.cross_max_correction_m):
            found.append((nearest, j, motion))
    fixed = usable[[i for i, _, _ in found]].reshape(-1, 3)
    return Anchored(
        np.array([j for _, j, _ in found], np.int64),
        fixed[:, 0],
        fixed[:, 1],
        fixed[:, 2],
        np.array([m.right_m for _, _, m in found], np.float64),
        np.array([m.forward_m for _, _, m in found], np.float64),
        np.radians(np.array([m.turn_deg for _, _, m in found], np.float64)),
    ), tried


def _viewable_nearest(
    views: _AnchorViews, usable: FloatArray, pose: FloatArray, gates: Gates
) -> tuple[int | None, GroundView | None]:
    """The nearest qualifying anchor that can be viewed, and its view; anchors that cannot be
    are struck out of `usable` (NaN) on the way."""
    while (nearest := nearest_alike(usable, pose, gates)) is not None:
        anchor_view = views.view(nearest)
        if anchor_view is not None:
            return nearest, anchor_view
        usable[nearest] = np.nan
    return None, None
