"""Choosing the map frames a sequence is aligned to: the few nearest per pose that look the
same way."""

from __future__ import annotations

import math

import numpy as np

from mapbuilder.geo import LocalFrame
from mapbuilder.tiles.bev import FramePose
from mapbuilder.tiles.map_frames import MapFrame, in_box, nearest_per_pose
from mapbuilder.tiles.poses import CatalogPose

LON, LAT = 24.9384, 60.1699
LOCAL = LocalFrame(LON, LAT)


def _pose(x: float, y: float, heading: float) -> FramePose:
    lon, lat = LOCAL.to_wgs84(np.array([x]), np.array([y]))
    return FramePose(float(lon[0]), float(lat[0]), heading, 0.0)


def _map_frame(name: str, x: float, y: float, heading: float = 0.0) -> MapFrame:
    return MapFrame(("map", "seq"), name, f"frames/{name}.jpg", "cam", {}, _pose(x, y, heading))


def _posed(x: float, y: float, heading: float = 0.0) -> CatalogPose:
    return CatalogPose(f"own-{x}-{y}", _pose(x, y, heading), "cam")


def _chosen(frames: list[MapFrame], poses: list[CatalogPose], per_pose: int = 2) -> list[str]:
    found = nearest_per_pose(frames, poses, reach_m=12.0, max_angle_deg=45.0, per_pose=per_pose)
    return [m.frame_id for m in found]


def test_each_pose_keeps_its_nearest_map_frames_that_look_its_way() -> None:
    """Of frames along the road, each pose keeps the two nearest within reach; one heading the
    other way, one too far and one with no heading are left out."""
    frames = [_map_frame(f"m{k}", 0.5, 4.0 * k) for k in range(10)]
    frames += [
        _map_frame("opposite", 0.0, 0.1, 180.0),
        _map_frame("far", 13.0, 0.0),
        _map_frame("no-heading", 0.0, 0.2, math.nan),
    ]
    assert _chosen(frames, [_posed(0.0, 0.0)]) == ["m0", "m1"]
    assert _chosen(frames, [_posed(0.0, 0.0), _posed(0.0, 20.0)]) == ["m0", "m1", "m4", "m5"]
    assert _chosen(frames, [_posed(0.0, 0.0)], per_pose=30) == ["m0", "m1", "m2"]  # m3: 12.01 m
    assert _chosen(frames, [_posed(0.0, 0.0, 100.0)]) == []


def test_equally_near_frames_are_chosen_the_same_whatever_their_order() -> None:
    """Two map frames at the same distance: the same one is kept, however they are listed."""
    frames = [_map_frame("b", 1.0, 0.0), _map_frame("a", -1.0, 0.0)]
    pose = [_posed(0.0, 0.0)]
    assert _chosen(frames, pose, per_pose=1) == _chosen(frames[::-1], pose, per_pose=1) == ["a"]


def test_the_box_cut_keeps_what_is_within_reach() -> None:
    frames = [_map_frame("near", 3.0, 3.0), _map_frame("away", 40.0, 0.0)]
    assert [m.frame_id for m in in_box(frames, [_posed(0.0, 0.0)], 12.0)] == ["near"]
