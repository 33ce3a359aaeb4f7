"""The pinhole dashcam: calibration, pose, and the ground-plane homography used to render and project.

Conventions: local metres x east, y north, z up; heading clockwise from grid north; camera axes as in
OpenCV (x right, y down, z forward); pitch is the downward tilt of the optical axis, roll clockwise
as seen from behind the camera.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    """Intrinsics, distortion and mounting of the dashcam, written beside every simulated video."""

    width_px: int = 1920
    height_px: int = 1080
    horizontal_fov_deg: float = 100.0
    mount_height_m: float = 1.4
    pitch_deg: float = 6.0
    roll_deg: float = 0.0
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def focal_px(self) -> float:
        return self.width_px / 2 / math.tan(math.radians(self.horizontal_fov_deg) / 2)

    @property
    def camera_matrix(self) -> Matrix:
        f = self.focal_px
        return np.array([[f, 0, self.width_px / 2], [0, f, self.height_px / 2], [0, 0, 1.0]])

    def to_json(self) -> dict[str, object]:
        """The calibration file's content: OpenCV's camera matrix and distortion plus the mounting."""
        return {
            **asdict(self),
            "camera_matrix": self.camera_matrix.tolist(),
            "dist_coeffs": list(self.distortion),
            "model": "pinhole",
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def read(cls, path: Path) -> Calibration:
        data = json.loads(path.read_text())
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        fields["distortion"] = tuple(fields["distortion"])
        return cls(**fields)


def world_to_camera_rotation(heading_deg: float, pitch_deg: float, roll_deg: float) -> Matrix:
    """Rows are the camera's x (right), y (down) and z (forward) axes in local world coordinates."""
    h, p, r = (math.radians(a) for a in (heading_deg, pitch_deg, roll_deg))
    forward = np.array([math.sin(h), math.cos(h), 0.0])
    right = np.array([math.cos(h), -math.sin(h), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    z_axis = math.cos(p) * forward + math.sin(p) * down
    y_axis = math.cos(p) * down - math.sin(p) * forward
    x_axis = right
    # Roll turns the image clockwise: rotate x and y about the optical axis.
    x_rolled = math.cos(r) * x_axis + math.sin(r) * y_axis
    y_rolled = -math.sin(r) * x_axis + math.cos(r) * y_axis
    return np.stack([x_rolled, y_rolled, z_axis])


@dataclass(frozen=True)
class Pose:
    """Where the vehicle is: the camera is `mount_height_m` above (x_m, y_m) looking along heading."""

    x_m: float
    y_m: float
    heading_deg: float


def ground_homography(calibration: Calibration, pose: Pose) -> Matrix:
    """3x3 matrix taking ground points (x, y, 1) in local metres to image pixels (homogeneous)."""
    rotation = world_to_camera_rotation(
        pose.heading_deg, calibration.pitch_deg, calibration.roll_deg
    )
    centre = np.array([pose.x_m, pose.y_m, calibration.mount_height_m])
    translation = -rotation @ centre
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], translation])
    return np.asarray(calibration.camera_matrix @ extrinsic, dtype=np.float64)


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
