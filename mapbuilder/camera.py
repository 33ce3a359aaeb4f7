"""The dashcam's camera model: calibration, orientation, and the ground-plane homography.

Conventions: metres x east, y north, z up (the simulator's local frame, or east-north around a
camera for map tiles); heading clockwise from north; camera axes as in OpenCV (x right, y down,
z forward); pitch is the downward tilt of the optical axis, roll clockwise as seen from behind.
The ground is a plane, so ground points and image pixels are related by one homography per pose.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mapbuilder.errors import MapError

Matrix = NDArray[np.float64]


class CalibrationError(MapError):
    """A calibration file that is missing, unreadable or lacks a field the camera model needs."""


class CameraLike(Protocol):
    """What projection needs of a camera: image size, intrinsics, distortion and mounting."""

    @property
    def width_px(self) -> int: ...
    @property
    def height_px(self) -> int: ...
    @property
    def mount_height_m(self) -> float: ...
    @property
    def pitch_deg(self) -> float: ...
    @property
    def roll_deg(self) -> float: ...
    @property
    def camera_matrix(self) -> Matrix: ...
    @property
    def distortion(self) -> tuple[float, float, float, float, float]: ...


@dataclass(frozen=True)
class PinholeCamera:
    """A real device's camera as its calibration describes it (any camera matrix), for example
    from the catalog's `cameras` table (the upload protocol's `CameraCalibration` fields)."""

    width_px: int
    height_px: int
    matrix: tuple[tuple[float, ...], ...]  # 3 x 3
    distortion: tuple[float, float, float, float, float]
    mount_height_m: float
    pitch_deg: float
    roll_deg: float

    @property
    def camera_matrix(self) -> Matrix:
        """The 3x3 intrinsic matrix."""
        return np.array(self.matrix, dtype=np.float64)

    @classmethod
    def from_calibration(cls, data: dict[str, Any]) -> PinholeCamera:
        """From calibration JSON fields (`camera_matrix`, `dist_coeffs`, mounting, size)."""
        try:
            k1, k2, p1, p2, k3 = (float(v) for v in data.get("dist_coeffs", [0.0] * 5))
            matrix = tuple(tuple(float(v) for v in row) for row in data["camera_matrix"])
            if len(matrix) != 3 or any(len(row) != 3 for row in matrix):
                msg = "camera_matrix is not 3 x 3"
                raise ValueError(msg)
            return cls(
                width_px=int(data["width_px"]),
                height_px=int(data["height_px"]),
                matrix=matrix,
                distortion=(k1, k2, p1, p2, k3),
                mount_height_m=float(data["mount_height_m"]),
                pitch_deg=float(data["pitch_deg"]),
                roll_deg=float(data["roll_deg"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"the calibration lacks or garbles {exc}: it needs width_px, height_px, camera_matrix, mount_height_m, pitch_deg, roll_deg"
            raise CalibrationError(msg) from exc


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
        """A calibration from its JSON file (as `roadswarm sim drive` writes it)."""
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            msg = f"cannot read the calibration {path} ({exc}): pass the calibration.json of the camera"
            raise CalibrationError(msg) from exc

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """A calibration from its JSON fields; the camera matrix must agree with the field of view."""
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__}
            fields["distortion"] = tuple(float(v) for v in fields["distortion"])
            calibration = cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"the calibration lacks or garbles {exc}: it needs {', '.join(cls.__dataclass_fields__)}"
            raise CalibrationError(msg) from exc
        return calibration


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


def ground_homography(
    calibration: CameraLike, x_m: float, y_m: float, heading_deg: float
) -> Matrix:
    """3x3 matrix taking ground points (x, y, 1) in metres to image pixels (homogeneous), for a
    camera `mount_height_m` above (x_m, y_m) looking along `heading_deg`."""
    rotation = world_to_camera_rotation(heading_deg, calibration.pitch_deg, calibration.roll_deg)
    centre = np.array([x_m, y_m, calibration.mount_height_m])
    translation = -rotation @ centre
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], translation])
    return np.asarray(calibration.camera_matrix @ extrinsic, dtype=np.float64)
