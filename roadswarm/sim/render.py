"""The virtual dashcam's renderer: ground from the orthophoto, sky above, actors as textured quads.

The ground is one perspective warp per distance band from a mosaic of orthophoto chunks around the
vehicle; the far band samples a reduced mosaic so that distant texture does not alias into noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from roadswarm.sim.actors import (
    BODY_PX_PER_M,
    FACE_H_M,
    FACE_W_M,
    PLATE_H_M,
    PLATE_W_M,
    Actor,
    Pedestrian,
    Vehicle,
    body_texture,
    face_texture,
    plate_texture,
)
from roadswarm.sim.camera import (
    Calibration,
    Pose,
    ground_distance_map,
    ground_homography,
    project_points,
)
from roadswarm.sim.ortho import Orthophoto
from roadswarm.sim.texture import U8Image

Matrix = NDArray[np.float64]
MOSAIC_RADIUS_M = 90.0
RECENTRE_M = 20.0
NEAR_BAND_M = 18.0
MAX_RANGE_M = 80.0
HAZE_FROM_M = 55.0
FAR_LEVEL = 4
HAZE_BGR = (200, 196, 190)
SKY_TOP_BGR, SKY_HORIZON_BGR = (215, 150, 95), (235, 215, 200)
MIN_QUAD_DEPTH_M = 0.5


@dataclass(frozen=True)
class PrivacyBox:
    """Ground truth for one plate or face in one frame: pixel box and the visible share of it."""

    kind: str  # "plate" or "face"
    actor_id: int
    x: int
    y: int
    w: int
    h: int
    visible: float
    distance_m: float
    text: str = ""


@dataclass
class _Quad:
    corners_m: (
        Matrix  # 4 x 3: top-left, top-right, bottom-right, bottom-left as seen from the front
    )
    texture: U8Image
    actor_id: int
    kind: str = "body"
    text: str = ""
    keyed: bool = False  # black pixels of the texture are transparent


@dataclass
class _Mosaic:
    image: U8Image
    reduced: U8Image
    west_m: float
    north_m: float
    centre: tuple[float, float]


@dataclass
class FrameRenderer:
    """Renders frames for successive poses of one drive."""

    ortho: Orthophoto
    calibration: Calibration
    actors: list[Actor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._layout = _FrameLayout.of(ground_distance_map(self.calibration), self.calibration)
        self._mosaic: _Mosaic | None = None
        self._quads = {a.actor_id: _actor_quads(a) for a in self.actors}
        self._positions = np.array([[a.x_m, a.y_m] for a in self.actors]).reshape(-1, 2)

    def render(self, pose: Pose) -> tuple[U8Image, list[PrivacyBox]]:
        """One frame at `pose` and the plates and faces visible in it."""
        layout = self._layout
        frame = np.empty_like(layout.background)
        frame[: layout.sky_end] = layout.background[: layout.sky_end]
        self._warp_ground(frame, self._mosaic_for(pose), pose)
        layout.finish_horizon(frame)
        boxes = self._draw_actors(frame, pose)
        return frame, boxes

    def _mosaic_for(self, pose: Pose) -> _Mosaic:
        m = self._mosaic
        if m is None or math.dist(m.centre, (pose.x_m, pose.y_m)) > RECENTRE_M:
            r = MOSAIC_RADIUS_M
            image, (west, north) = self.ortho.read_bbox(
                (pose.x_m - r, pose.y_m - r, pose.x_m + r, pose.y_m + r)
            )
            size = (image.shape[1] // FAR_LEVEL, image.shape[0] // FAR_LEVEL)
            reduced = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
            m = self._mosaic = _Mosaic(image, reduced, west, north, (pose.x_m, pose.y_m))
        return m

    def _warp_ground(self, frame: U8Image, mosaic: _Mosaic, pose: Pose) -> None:
        """Warp the reduced mosaic into the far rows and the full one into the near rows."""
        to_image = ground_homography(self.calibration, pose)
        res = self.ortho.grid.resolution_m
        layout = self._layout
        bands = (
            (mosaic.reduced, FAR_LEVEL, layout.sky_end, layout.near_start),
            (mosaic.image, 1, layout.near_start, frame.shape[0]),
        )
        for source, scale, row0, row1 in bands:
            if row1 <= row0:
                continue
            # Mosaic pixel (u, v) has its centre at west + (u + 0.5) * pixel, north - (v + 0.5) * pixel.
            pixel = res * scale
            to_ground = np.array(
                [
                    [pixel, 0, mosaic.west_m + pixel / 2],
                    [0, -pixel, mosaic.north_m - pixel / 2],
                    [0, 0, 1],
                ]
            )
            shift = np.array([[1, 0, 0], [0, 1, -row0], [0, 0, 1.0]])
            frame[row0:row1] = cv2.warpPerspective(
                source,
                shift @ to_image @ to_ground,
                (frame.shape[1], row1 - row0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=HAZE_BGR,
            )

    def _draw_actors(self, frame: U8Image, pose: Pose) -> list[PrivacyBox]:
        if not len(self._positions):
            return []
        distances = np.hypot(self._positions[:, 0] - pose.x_m, self._positions[:, 1] - pose.y_m)
        near = [i for i in np.argsort(-distances) if distances[i] < MAX_RANGE_M]
        owner = np.full(frame.shape[:2], -1, np.int32)
        drawn: list[tuple[int, _Quad, Matrix]] = []
        for i in near:
            actor = self.actors[i]
            camera = (pose.x_m, pose.y_m, self.calibration.mount_height_m)
            for quad in _facing_quads(self._quads[actor.actor_id], actor, camera):
                polygon = _draw_quad(frame, quad, self.calibration, pose)
                if polygon is not None:
                    cv2.fillConvexPoly(owner, np.round(polygon).astype(np.int32), len(drawn))
                    drawn.append((len(drawn), quad, polygon))
        return [
            _privacy_box(quad, polygon, owner, index, pose)
            for index, quad, polygon in drawn
            if quad.kind in {"plate", "face"}
        ]


@dataclass(frozen=True)
class _FrameLayout:
    """Which rows are sky, hazy distance or ground: fixed by the mounting, so computed once."""

    background: U8Image
    sky_end: int  # rows above are sky only
    near_start: int  # rows from here on lie within NEAR_BAND_M everywhere
    haze_end: int  # rows from sky_end to here need sky or haze blended in
    haze: NDArray[np.float32]  # per pixel of rows [sky_end, haze_end): 1 = haze, 0 = clear ground
    sky: NDArray[np.bool_]  # per pixel of the same rows: above the horizon

    @classmethod
    def of(cls, distance: Matrix, calibration: Calibration) -> _FrameLayout:
        height = calibration.height_px
        finite = np.isfinite(distance)
        any_ground = np.flatnonzero(finite.any(axis=1))
        sky_end = int(any_ground[0]) if len(any_ground) else height
        not_near = np.flatnonzero(~(finite & (distance <= NEAR_BAND_M)).all(axis=1))
        near_start = int(not_near[-1] + 1) if len(not_near) else 0
        hazy = np.flatnonzero((~finite | (distance > HAZE_FROM_M)).any(axis=1))
        haze_end = max(int(hazy[-1] + 1) if len(hazy) else 0, sky_end)
        haze = np.clip((distance - HAZE_FROM_M) / (MAX_RANGE_M - HAZE_FROM_M), 0.0, 1.0)
        t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        sky = (
            np.array(SKY_TOP_BGR, np.float32) * (1 - t) + np.array(SKY_HORIZON_BGR, np.float32) * t
        )
        background = np.ascontiguousarray(np.broadcast_to(sky, (height, calibration.width_px, 3)))
        return cls(
            background.astype(np.uint8),
            sky_end,
            max(near_start, sky_end),
            haze_end,
            haze[sky_end:haze_end].astype(np.float32),
            ~finite[sky_end:haze_end],
        )

    def finish_horizon(self, frame: U8Image) -> None:
        """Fade distant ground into haze, and keep the sky above the horizon in the mixed rows."""
        rows = slice(self.sky_end, self.haze_end)
        ground = frame[rows].astype(np.float32)
        alpha = self.haze[..., None]
        hazed = ground * (1 - alpha) + np.array(HAZE_BGR, np.float32) * alpha
        hazed[self.sky] = self.background[rows][self.sky]
        frame[rows] = hazed.astype(np.uint8)


def _actor_quads(actor: Actor) -> list[_Quad]:
    """Quads in the actor's own frame (metres: x right, y forward, z up), placed at render time."""
    if isinstance(actor, Vehicle):
        return _vehicle_quads(actor)
    return _pedestrian_quads(actor)


def _rect(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> Matrix:
    return np.array([[x0, y0, z1], [x1, y1, z1], [x1, y1, z0], [x0, y0, z0]], dtype=np.float64)


def _vehicle_quads(v: Vehicle) -> list[_Quad]:
    hl, hw, top = v.length_m / 2, v.width_m / 2, v.height_m
    plate = plate_texture(v.plate_text)
    rear = body_texture(v.colour, width_m=v.width_m, height_m=top - 0.2, kind="rear")
    front = body_texture(v.colour, width_m=v.width_m, height_m=top - 0.2, kind="front")
    side = body_texture(v.colour, width_m=v.length_m, height_m=top, kind="side")
    pz0, pz1 = 0.42, 0.42 + PLATE_H_M
    pw = PLATE_W_M / 2
    ahead = 0.01  # plates stand a centimetre proud of the body so they are drawn over it
    return [
        _Quad(_rect(-hw, hw, -hl, -hl, 0.2, top), rear, v.actor_id),
        _Quad(
            _rect(-pw, pw, -hl - ahead, -hl - ahead, pz0, pz1),
            plate,
            v.actor_id,
            "plate",
            v.plate_text,
        ),
        _Quad(_rect(hw, -hw, hl, hl, 0.2, top), front, v.actor_id),
        _Quad(
            _rect(pw, -pw, hl + ahead, hl + ahead, pz0, pz1),
            plate,
            v.actor_id,
            "plate",
            v.plate_text,
        ),
        _Quad(_rect(hw, hw, -hl, hl, 0.0, top), side, v.actor_id),
        _Quad(_rect(-hw, -hw, hl, -hl, 0.0, top), side, v.actor_id),
    ]


def _pedestrian_quads(p: Pedestrian) -> list[_Quad]:
    head = FACE_H_M
    body_h = p.height_m - head
    body = body_texture(p.shirt, width_m=0.55, height_m=body_h, kind="person")
    quads = [_Quad(_rect(-0.275, 0.275, 0, 0, 0.0, body_h), body, p.actor_id, keyed=True)]
    if p.facing_camera:
        face = face_texture(p.skin, p.actor_id)
        quads.append(
            _Quad(
                _rect(-FACE_W_M / 2, FACE_W_M / 2, -0.01, -0.01, body_h, p.height_m),
                face,
                p.actor_id,
                "face",
                keyed=True,
            )
        )
    else:
        hair = np.full(
            (int(head * BODY_PX_PER_M), int(FACE_W_M * BODY_PX_PER_M), 3), (25, 30, 35), np.uint8
        )
        quads.append(
            _Quad(
                _rect(-FACE_W_M / 2, FACE_W_M / 2, -0.01, -0.01, body_h, p.height_m),
                hair,
                p.actor_id,
            )
        )
    return quads


def _facing_quads(
    quads: list[_Quad], actor: Actor, camera_m: tuple[float, float, float]
) -> list[_Quad]:
    """The actor's quads placed in the world, keeping only those whose front faces the camera."""
    if isinstance(actor, Vehicle):
        heading = math.radians(actor.heading_deg)
    else:  # people are billboards turned to the camera; their front is towards it
        heading = math.atan2(camera_m[0] - actor.x_m, camera_m[1] - actor.y_m) + math.pi
    right = np.array([math.cos(heading), -math.sin(heading), 0.0])
    forward = np.array([math.sin(heading), math.cos(heading), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    origin = np.array([actor.x_m, actor.y_m, 0.0])
    camera = np.array(camera_m)
    placed = []
    for quad in quads:
        corners = origin + quad.corners_m @ np.stack([right, forward, up])
        normal = np.cross(corners[3] - corners[0], corners[1] - corners[0])
        if float(np.dot(normal, camera - corners.mean(axis=0))) > 0:
            placed.append(
                _Quad(corners, quad.texture, quad.actor_id, quad.kind, quad.text, quad.keyed)
            )
    return placed


def _draw_quad(frame: U8Image, quad: _Quad, calibration: Calibration, pose: Pose) -> Matrix | None:
    """Warp the quad's texture into the frame; returns its image polygon, or None if not drawn."""
    uv = project_points(calibration, pose, quad.corners_m)
    if np.isnan(uv).any() or _depth_min(quad, pose) < MIN_QUAD_DEPTH_M:
        return None
    height, width = frame.shape[:2]
    x0, y0 = np.floor(uv.min(axis=0)).astype(int)
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 1
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    th, tw = quad.texture.shape[:2]
    src = np.array([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, (uv - [cx0, cy0]).astype(np.float32))
    size = (cx1 - cx0, cy1 - cy0)
    patch = cv2.warpPerspective(quad.texture, matrix, size, flags=cv2.INTER_AREA)
    alpha_src = np.full((th, tw), 255, np.uint8)
    if quad.keyed:
        alpha_src[np.all(quad.texture == 0, axis=2)] = 0
    alpha = cv2.warpPerspective(alpha_src, matrix, size, flags=cv2.INTER_LINEAR)[..., None] / 255.0
    region = frame[cy0:cy1, cx0:cx1]
    region[:] = (region * (1 - alpha) + patch * alpha).astype(np.uint8)
    return uv


def _depth_min(quad: _Quad, pose: Pose) -> float:
    heading = math.radians(pose.heading_deg)
    forward = np.array([math.sin(heading), math.cos(heading)])
    return float(((quad.corners_m[:, :2] - [pose.x_m, pose.y_m]) @ forward).min())


def _privacy_box(
    quad: _Quad, polygon: Matrix, owner: NDArray[np.int32], index: int, pose: Pose
) -> PrivacyBox:
    height, width = owner.shape
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int)
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    area = max(cv2.contourArea(polygon.astype(np.float32)), 1.0)
    visible = (
        float((owner[cy0:cy1, cx0:cx1] == index).sum()) / area if cx1 > cx0 and cy1 > cy0 else 0.0
    )
    distance = float(np.hypot(*(quad.corners_m[:, :2].mean(axis=0) - [pose.x_m, pose.y_m])))
    return PrivacyBox(
        quad.kind,
        quad.actor_id,
        int(cx0),
        int(cy0),
        int(cx1 - cx0),
        int(cy1 - cy0),
        round(min(visible, 1.0), 3),
        round(distance, 2),
        quad.text,
    )
