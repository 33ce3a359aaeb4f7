"""The simulator's dashcam: the camera model of `mapbuilder.camera` placed at a pose, to render and
project.

Conventions: local metres x east, y north, z up; heading clockwise from grid north; camera axes as in
OpenCV (x right, y down, z forward); pitch is the downward tilt of the optical axis, roll clockwise
as seen from behind the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapbuilder import camera
from mapbuilder.camera import Calibration, Matrix, world_to_camera_rotation

__all__ = ["Calibration", "Pose", "ground_distance_map", "ground_homography", "project_points"]


@dataclass(frozen=True)
class Pose:
    """Where the vehicle is: the camera is `mount_height_m` above (x_m, y_m) looking along heading."""

    x_m: float
    y_m: float
    heading_deg: float


def ground_homography(calibration: Calibration, pose: Pose) -> Matrix:
    """3x3 matrix taking ground points (x, y, 1) in local metres to image pixels (homogeneous)."""
    return camera.ground_homography(calibration, pose.x_m, pose.y_m, pose.heading_deg)


def project_points(calibration: Calibration, pose: Pose, points_m: Matrix) -> Matrix:
    """Image pixels of 3-D local points (N x 3); rows behind the camera come back as NaN."""
    rotation = world_to_camera_rotation(
        pose.heading_deg, calibration.pitch_deg, calibration.roll_deg
    )
    centre = np.array([pose.x_m, pose.y_m, calibration.mount_height_m])
    cam = (np.asarray(points_m, float) - centre) @ rotation.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ calibration.camera_matrix.T)[:, :2] / cam[:, 2:3]
    uv[cam[:, 2] <= 0.05] = np.nan
    return np.asarray(uv, dtype=np.float64)


def ground_distance_map(calibration: Calibration) -> Matrix:
    """For every pixel, the horizontal distance at which its ray meets the ground (inf above horizon).

    It depends on the mounting only, not on the pose, so the renderer computes it once per drive.
    """
    rotation = world_to_camera_rotation(0.0, calibration.pitch_deg, calibration.roll_deg)
    # OpenCV's convention: integer pixel coordinates are pixel centres.
    cols, rows = np.meshgrid(np.arange(calibration.width_px), np.arange(calibration.height_px))
    rays_cam = np.stack(
        [
            (cols - calibration.width_px / 2),
            (rows - calibration.height_px / 2),
            np.full_like(cols, calibration.focal_px),
        ],
        axis=-1,
    )
    rays = rays_cam @ rotation  # camera to world: multiply by R transposed on the right
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = calibration.mount_height_m / -rays[..., 2]
    distance = np.hypot(rays[..., 0], rays[..., 1]) * scale
    distance[rays[..., 2] >= 0] = np.inf
    return distance
