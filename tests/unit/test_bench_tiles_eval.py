"""The tile benchmark's doubled-marking measure: it must flag a doubled lane line and must not
count a vehicle smeared across the road (which no pose can remove) as one."""

from __future__ import annotations

import numpy as np
import pytest

from bench._tiles_eval import not_ground, tile_quality
from mapbuilder.tiles.mercator import TILE_PX

LAT, ZOOM = 60.17, 21
ASPHALT, PAINT, CAR = 90, 230, (240, 240, 235)


def _road() -> np.ndarray:
    """A bare asphalt tile (RGB) with a 6 px lane line down column 100."""
    rng = np.random.default_rng(3)
    grey = np.full((TILE_PX, TILE_PX), ASPHALT, np.float64) + rng.normal(0, 2, (TILE_PX,) * 2)
    grey[:, 100:106] = PAINT
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _rgba(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def _with_car(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[150:230, 160:200] = CAR  # a white car, 3 m by 1.5 m
    return out


def _doubled(rgb: np.ndarray) -> np.ndarray:
    """The lane line painted a second time, 14 px (about half a metre) beside itself."""
    out = rgb.copy()
    out[:, 114:120] = PAINT
    return out


def test_the_true_road_has_no_doubled_edges() -> None:
    truth = _road()
    quality = tile_quality(_rgba(truth), truth, LAT, ZOOM)
    assert quality.ghost_edges == pytest.approx(0.0)


def test_a_doubled_lane_line_is_flagged() -> None:
    truth = _road()
    quality = tile_quality(_rgba(_doubled(truth)), truth, LAT, ZOOM)
    assert quality.ghost_edges is not None and quality.ghost_edges > 0.3


def test_a_vehicle_is_left_out_but_a_doubled_line_beside_it_is_not() -> None:
    truth = _road()
    true_pose_stitch = _rgba(_with_car(truth))
    vehicles = not_ground(true_pose_stitch, truth, LAT, ZOOM)
    # The car's outline and a margin around it, nothing near the lane line.
    assert vehicles[190, 180] and vehicles[150, 160]
    assert not vehicles[:, 95:125].any()

    car_only = tile_quality(true_pose_stitch, truth, LAT, ZOOM, vehicles)
    assert car_only.ghost_edges_with_vehicles is not None
    assert car_only.ghost_edges_with_vehicles > 0.3
    assert car_only.ghost_edges == pytest.approx(0.0)

    doubled = tile_quality(_rgba(_doubled(_with_car(truth))), truth, LAT, ZOOM, vehicles)
    assert doubled.ghost_edges is not None and doubled.ghost_edges > 0.3
