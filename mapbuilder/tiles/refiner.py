"""Pose refinement as the tile pipeline's `PoseRefiner` (the seam in `poses.poses_for`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from itertools import groupby

from mapbuilder.camera import CameraLike
from mapbuilder.tiles.bev import U8Image
from mapbuilder.tiles.build import PosedFrame
from mapbuilder.tiles.poses import CatalogPose, PoseRefiner
from mapbuilder.tiles.refine import LaneLine, RefineSettings, refine_poses

REGISTERED = "registered"


def pose_refiner(
    load: Callable[[str], U8Image],
    camera_of: Callable[[str], CameraLike],
    *,
    lanes: Sequence[LaneLine] = (),
    settings: RefineSettings | None = None,
) -> PoseRefiner:
    """A refiner for `poses_for`: `load(frame_id)` gives a frame's RGB pixels and
    `camera_of(camera_id)` its camera. Each run of frames from one camera is refined with
    `refine_poses` (a single frame is kept as it is); poses come back with source
    "registered", same frames, same order."""

    def refine(found: Sequence[CatalogPose]) -> list[CatalogPose]:
        refined: list[CatalogPose] = []
        for camera_id, run in groupby(found, key=lambda p: p.camera_id):
            poses = list(run)
            if len(poses) < 2:
                refined.extend(poses)
                continue
            frames = [PosedFrame(p.frame_id, p.pose, partial(load, p.frame_id)) for p in poses]
            result = refine_poses(frames, camera_of(camera_id), lanes=lanes, settings=settings)
            refined.extend(
                replace(p, pose=pose, source=REGISTERED)
                for p, pose in zip(poses, result.poses, strict=True)
            )
        return refined

    return refine
