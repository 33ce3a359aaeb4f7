"""Parked vehicles with licence plates and pedestrians with faces, placed beside a drive's path.

They exist so that the privacy stage has something to find: every plate and face is a textured quad
whose projected box is ground truth for the frame.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from roadswarm.sim.route import DrivePath, RouteStep, _right_lane_offset
from roadswarm.sim.texture import U8Image

PLATE_W_M, PLATE_H_M = 0.52, 0.11
PLATE_PX_PER_M = 1000
FACE_W_M, FACE_H_M = 0.17, 0.23
FACE_PX_PER_M = 1000
BODY_PX_PER_M = 120
CAR_COLOURS = [
    (40, 40, 180),
    (200, 200, 205),
    (30, 30, 30),
    (150, 90, 30),
    (60, 120, 60),
    (90, 90, 95),
]
SKIN_TONES = [(150, 180, 225), (110, 150, 200), (80, 110, 160), (60, 80, 120)]
JUNCTION_CLEARANCE_M = 15.0


@dataclass(frozen=True)
class Vehicle:
    """A parked car: centre on the ground, heading, size and plate."""

    actor_id: int
    x_m: float
    y_m: float
    heading_deg: float
    colour: tuple[int, int, int]
    plate_text: str
    length_m: float = 4.4
    width_m: float = 1.8
    height_m: float = 1.5


@dataclass(frozen=True)
class Pedestrian:
    """A person standing beside the road, turned towards the road (face visible) or away."""

    actor_id: int
    x_m: float
    y_m: float
    facing_camera: bool
    shirt: tuple[int, int, int]
    skin: tuple[int, int, int]
    height_m: float = 1.75


Actor = Vehicle | Pedestrian


def random_plate_text(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    return f"{letters}-{rng.randrange(1, 1000)}"


def place_actors(
    path: DrivePath,
    route: list[RouteStep],
    rng: random.Random,
    *,
    junctions_at_m: NDArray[np.float64],
    spacing_m: float = 30.0,
) -> list[Actor]:
    """Cars at the kerbs and people on the pavements, every `spacing_m` on average, off junctions."""
    actors: list[Actor] = []
    s = rng.uniform(10.0, 30.0)
    while s < path.s_m[-1] - 10.0:
        if not len(junctions_at_m) or np.min(np.abs(junctions_at_m - s)) > JUNCTION_CLEARANCE_M:
            actors.append(_actor_at(path, route, s, len(actors), rng))
        s += rng.expovariate(1.0 / spacing_m) + 6.0
    return actors


def _actor_at(
    path: DrivePath, route: list[RouteStep], s: float, actor_id: int, rng: random.Random
) -> Actor:
    i = int(np.searchsorted(path.s_m, s))
    road = route[int(path.step_index[i])].road
    heading = float(path.heading_deg[i])
    right_x, right_y = math.cos(math.radians(heading)), -math.sin(math.radians(heading))
    lane = _right_lane_offset(road)
    on_right = road.oneway or rng.random() < 0.6
    edge = (road.width_m / 2 - lane) if on_right else -(road.width_m / 2 + lane)
    side = 1.0 if on_right else -1.0
    if rng.random() < 0.6:
        lateral = edge + side * 1.1
        facing = heading if on_right else (heading + 180.0) % 360
        x, y = path.x_m[i] + right_x * lateral, path.y_m[i] + right_y * lateral
        return Vehicle(
            actor_id, float(x), float(y), facing, rng.choice(CAR_COLOURS), random_plate_text(rng)
        )
    lateral = edge + side * rng.uniform(1.0, 2.2)
    x, y = path.x_m[i] + right_x * lateral, path.y_m[i] + right_y * lateral
    shirt = (rng.randrange(30, 220), rng.randrange(30, 220), rng.randrange(30, 220))
    return Pedestrian(
        actor_id, float(x), float(y), rng.random() < 0.75, shirt, rng.choice(SKIN_TONES)
    )


def plate_texture(text: str) -> U8Image:
    """A white EU-style plate with a blue band and black characters."""
    w, h = int(PLATE_W_M * PLATE_PX_PER_M), int(PLATE_H_M * PLATE_PX_PER_M)
    plate = np.full((h, w, 3), 235, np.uint8)
    cv2.rectangle(plate, (0, 0), (w - 1, h - 1), (20, 20, 20), 3)
    cv2.rectangle(plate, (3, 3), (int(0.08 * w), h - 4), (150, 60, 10), -1)
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_DUPLEX, int(0.62 * h), 4)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 4)
    x = int(0.1 * w + (0.88 * w - tw) / 2)
    cv2.putText(
        plate,
        text,
        (x, (h + th) // 2),
        cv2.FONT_HERSHEY_DUPLEX,
        scale,
        (15, 15, 15),
        4,
        cv2.LINE_AA,
    )
    return plate


def face_texture(skin: tuple[int, int, int], seed: int) -> U8Image:
    """A frontal face: skin, hair, eyes, brows, nose and mouth in human proportions."""
    w, h = int(FACE_W_M * FACE_PX_PER_M), int(FACE_H_M * FACE_PX_PER_M)
    rng = random.Random(seed)
    face = np.zeros((h, w, 3), np.uint8)
    centre = (w // 2, int(h * 0.55))
    cv2.ellipse(face, centre, (int(w * 0.42), int(h * 0.44)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    hair = rng.choice([(20, 25, 30), (30, 60, 110), (40, 40, 40), (120, 160, 200)])
    cv2.ellipse(
        face, (w // 2, int(h * 0.32)), (int(w * 0.45), int(h * 0.24)), 0, 180, 360, hair, -1
    )
    for ex in (int(w * 0.32), int(w * 0.68)):
        cv2.ellipse(
            face,
            (ex, int(h * 0.48)),
            (int(w * 0.09), int(h * 0.035)),
            0,
            0,
            360,
            (240, 240, 240),
            -1,
        )
        cv2.circle(face, (ex, int(h * 0.48)), int(w * 0.04), (40, 30, 20), -1, cv2.LINE_AA)
        cv2.line(
            face, (ex - int(w * 0.1), int(h * 0.41)), (ex + int(w * 0.1), int(h * 0.40)), hair, 4
        )
    shade = tuple(int(c * 0.75) for c in skin)
    cv2.line(face, (w // 2, int(h * 0.5)), (w // 2 - 6, int(h * 0.66)), shade, 3, cv2.LINE_AA)
    cv2.ellipse(
        face, (w // 2, int(h * 0.77)), (int(w * 0.15), int(h * 0.035)), 0, 0, 180, (60, 60, 150), 4
    )
    return face


def body_texture(
    colour: tuple[int, int, int], *, width_m: float, height_m: float, kind: str
) -> U8Image:
    """A car face (rear, front or side) or a person's body, at `BODY_PX_PER_M`."""
    w, h = max(2, int(width_m * BODY_PX_PER_M)), max(2, int(height_m * BODY_PX_PER_M))
    body = np.zeros((h, w, 3), np.uint8)
    body[:] = colour
    glass = (45, 40, 35)
    if kind in {"rear", "front"}:
        cv2.rectangle(
            body, (int(0.12 * w), int(0.05 * h)), (int(0.88 * w), int(0.42 * h)), glass, -1
        )
        light = (30, 30, 200) if kind == "rear" else (220, 230, 235)
        for x0 in (int(0.03 * w), int(0.83 * w)):
            cv2.rectangle(body, (x0, int(0.5 * h)), (x0 + int(0.14 * w), int(0.62 * h)), light, -1)
        cv2.rectangle(body, (0, int(0.86 * h)), (w - 1, h - 1), (35, 35, 35), -1)
    elif kind == "side":
        cv2.rectangle(
            body, (int(0.22 * w), int(0.05 * h)), (int(0.78 * w), int(0.42 * h)), glass, -1
        )
        for cx in (int(0.18 * w), int(0.82 * w)):
            cv2.circle(body, (cx, h - 1), int(0.3 * h), (20, 20, 20), -1)
    else:  # a person: legs, torso and arms in the shirt colour
        cv2.rectangle(body, (0, 0), (w - 1, h - 1), (0, 0, 0), -1)
        cv2.rectangle(body, (int(0.2 * w), int(0.0 * h)), (int(0.8 * w), int(0.55 * h)), colour, -1)
        cv2.rectangle(
            body, (int(0.25 * w), int(0.55 * h)), (int(0.48 * w), h - 1), (70, 50, 40), -1
        )
        cv2.rectangle(
            body, (int(0.52 * w), int(0.55 * h)), (int(0.75 * w), h - 1), (70, 50, 40), -1
        )
    return body
