"""Web Mercator arithmetic, the bird's-eye projection of a frame into tiles, and blending."""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from mapbuilder.camera import Calibration, CalibrationError, PinholeCamera, ground_homography
from mapbuilder.tiles.bev import FramePose, FrameProjector, TileSample
from mapbuilder.tiles.mercator import (
    TILE_PX,
    check_zoom,
    lonlat_of_px,
    px_per_metre,
    tiles_covering,
    world_px,
)
from mapbuilder.tiles.stitch import DAY_S, blend, encode_png

LON, LAT = 24.9384, 60.1699
CAMERA = Calibration(width_px=960, height_px=540)


def test_pixels_and_degrees_round_trip() -> None:
    """A position goes to global pixels and back to within a millionth of a degree."""
    x, y = world_px(LON, LAT, 21)
    lon, lat = lonlat_of_px(np.array([x]), np.array([y]), 21)
    assert lon[0] == pytest.approx(LON, abs=1e-9) and lat[0] == pytest.approx(LAT, abs=1e-9)


def test_scale_matches_the_pixel_distance_of_ten_metres() -> None:
    """px_per_metre agrees with the pixel distance between points 10 m apart (east and north)."""
    scale = px_per_metre(LAT, 21)
    _, y0 = world_px(LON, LAT, 21)
    metres_per_degree_lat = 111_412.0  # at 60 degrees north (WGS84 meridian arc)
    _, y1 = world_px(LON, LAT + 10 / metres_per_degree_lat, 21)
    assert (y0 - y1) / 10 == pytest.approx(scale, rel=3e-3)
    assert 26 < scale < 27  # about 3.7 cm per pixel at 60 degrees north


def test_tiles_covering_a_box() -> None:
    """A box spanning one tile boundary in each direction touches four tiles."""
    tiles = tiles_covering(255.0, 255.0, 257.0, 257.0, 3)
    assert tiles == [(3, 0, 0), (3, 1, 0), (3, 0, 1), (3, 1, 1)]
    with pytest.raises(ValueError, match="out of range"):
        check_zoom(30)


def _checker(east: NDArray[np.float64], north: NDArray[np.float64]) -> NDArray[np.uint8]:
    """A ground pattern of 1 m squares, dark and light, with a colour ramp to make it unique."""
    squares = (np.floor(east) + np.floor(north)) % 2
    grey = 60 + 140 * squares
    red = np.clip(128 + 4 * east, 0, 255)
    return np.stack([red, grey, grey], axis=-1).astype(np.uint8)


def _render(heading_deg: float) -> NDArray[np.uint8]:
    """What the camera sees of the checker ground, rendered through the inverse homography."""
    inverse = np.linalg.inv(ground_homography(CAMERA, 0.0, 0.0, heading_deg))
    cols, rows = np.meshgrid(np.arange(CAMERA.width_px), np.arange(CAMERA.height_px))
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1).reshape(-1, 3).T
    ground = inverse @ pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        east, north = ground[0] / ground[2], ground[1] / ground[2]
    image = _checker(np.nan_to_num(east), np.nan_to_num(north)).reshape(
        CAMERA.height_px, CAMERA.width_px, 3
    )
    return np.ascontiguousarray(image)


@pytest.mark.parametrize("heading", [0.0, 37.0, 200.0])
def test_a_frame_lands_where_its_ground_is(heading: float) -> None:
    """Projected into tiles, the camera's view of a known ground pattern reproduces the pattern."""
    frame = _render(heading)
    projector = FrameProjector(CAMERA)
    pose = FramePose(LON, LAT, heading, 0.0)
    tiles = projector.tiles(pose)
    assert 4 <= len(tiles) <= 60
    errors = []
    for tile in tiles:
        sample = projector.sample(frame, pose, tile)
        if sample is None:
            continue
        _, tx, ty = tile
        cx, cy = world_px(LON, LAT, 21)
        scale = px_per_metre(LAT, 21)
        grid = np.arange(TILE_PX) + 0.5
        east_all = (tx * TILE_PX + grid[np.newaxis, :] - cx) / scale
        north_all = -(ty * TILE_PX + grid[:, np.newaxis] - cy) / scale
        east, north = (a[sample.window] for a in np.broadcast_arrays(east_all, north_all))
        expected = _checker(east, north)
        # Inside the footprint, up to 12 m ahead (farther, the camera sees a metre of ground in
        # under two pixel rows), away from the square edges that resampling blurs.
        forward = east * math.sin(math.radians(heading)) + north * math.cos(math.radians(heading))
        inner = (
            (sample.weight > 0)
            & (forward < 12.0)
            & (np.abs(east - np.rint(east)) > 0.15)
            & (np.abs(north - np.rint(north)) > 0.15)
        )
        if not inner.any():
            continue
        errors.append(np.abs(sample.image[inner].astype(int) - expected[inner].astype(int)).mean())
    assert errors and float(np.mean(errors)) < 4.0


def test_weights_prefer_near_ground_and_stop_at_the_limits() -> None:
    """Nothing is taken nearer than 3 m or farther than 25 m; nearer ground weighs more."""
    projector = FrameProjector(CAMERA)
    pose = FramePose(LON, LAT, 0.0, 0.0)
    samples = [projector.sample(_render(0.0), pose, tile) for tile in projector.tiles(pose)]
    cx, cy = world_px(LON, LAT, 21)
    scale = px_per_metre(LAT, 21)

    def weight_at(north_m: float) -> float:
        x, y = cx, cy - north_m * scale
        tile = (21, int(x // TILE_PX), int(y // TILE_PX))
        for sample in samples:
            if sample is not None and sample.tile == tile:
                full = np.zeros((TILE_PX, TILE_PX), np.float32)
                full[sample.window] = sample.weight
                return float(full[int(y) % TILE_PX, int(x) % TILE_PX])
        return 0.0

    assert weight_at(1.0) == 0.0 and weight_at(30.0) == 0.0
    assert weight_at(6.0) > weight_at(15.0) > 0.0


def _sample(colour: tuple[int, int, int], weight: float, time_s: float) -> TileSample:
    image = np.zeros((TILE_PX, TILE_PX, 3), np.uint8)
    image[:] = colour
    return TileSample((21, 0, 0), image, np.full((TILE_PX, TILE_PX), weight, np.float32), time_s)


def test_blend_votes_out_a_ghost_and_ignores_order() -> None:
    """Three passes agree, one shows a car: the car is voted out, whatever the order."""
    samples = [_sample((100, 100, 100), 1.0, t) for t in (0.0, 10.0, 20.0)]
    samples.append(_sample((250, 30, 30), 1.0, 30.0))
    first = blend(samples)
    assert np.abs(first[128, 128, :3].astype(int) - 100).max() <= 12
    shuffled = samples[:]
    random.Random(3).shuffle(shuffled)
    assert encode_png(blend(shuffled)) == encode_png(first)


def test_newer_imagery_replaces_older() -> None:
    """A week-newer capture outweighs an old one of the same quality."""
    old, new = _sample((40, 40, 40), 1.0, 0.0), _sample((200, 200, 200), 1.0, 7 * DAY_S)
    assert blend([old, new])[0, 0, 0] > 195


def test_unseen_pixels_are_transparent() -> None:
    """Where no frame has weight the tile is transparent black."""
    sample = _sample((90, 90, 90), 1.0, 0.0)
    right_half = TileSample(sample.tile, sample.image[:, 128:], sample.weight[:, 128:], 0.0, 0, 128)
    rgba = blend([right_half])
    assert rgba[0, 0].tolist() == [0, 0, 0, 0] and rgba[0, -1, 3] == 255


def test_png_round_trips() -> None:
    """The encoded tile decodes to the same pixels."""
    rgba = blend([_sample((10, 20, 30), 1.0, 0.0)])
    decoded = cv2.imdecode(np.frombuffer(encode_png(rgba), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA), rgba)
    assert math.isclose(float(rgba[..., 3].mean()), 255.0)


def test_a_devices_calibration_projects_like_the_simulators() -> None:
    """A `PinholeCamera` read from calibration JSON gives the same tile as the simulator's model."""
    calibration = {
        "width_px": CAMERA.width_px,
        "height_px": CAMERA.height_px,
        "camera_matrix": CAMERA.camera_matrix.tolist(),
        "dist_coeffs": [0.0] * 5,
        "mount_height_m": CAMERA.mount_height_m,
        "pitch_deg": CAMERA.pitch_deg,
        "roll_deg": CAMERA.roll_deg,
    }
    device = PinholeCamera.from_calibration(calibration)
    pose = FramePose(LON, LAT, 37.0, 0.0)
    frame = _render(37.0)
    compared = 0
    for tile in FrameProjector(CAMERA).tiles(pose):
        ours, theirs = (FrameProjector(c).sample(frame, pose, tile) for c in (CAMERA, device))
        assert (ours is None) == (theirs is None)
        if ours is not None and theirs is not None:
            assert np.array_equal(ours.image, theirs.image)
            assert np.array_equal(ours.weight, theirs.weight)
            compared += 1
    assert compared > 3
    with pytest.raises(CalibrationError, match="camera_matrix"):
        PinholeCamera.from_calibration({**calibration, "camera_matrix": [[1.0, 0.0]]})


@pytest.mark.parametrize(
    "camera",
    [
        CAMERA,
        Calibration(width_px=960, height_px=540, pitch_deg=15.0, roll_deg=4.0),
        Calibration(width_px=960, height_px=540, pitch_deg=-3.0, roll_deg=-5.0, mount_height_m=2.5),
        Calibration(
            width_px=960,
            height_px=540,
            horizontal_fov_deg=120.0,
            distortion=(-0.25, 0.08, 0.001, -0.001, -0.01),
        ),
    ],
    ids=["level", "pitched-down-rolled", "high-rolled-up", "wide-distorted"],
)
def test_a_frame_kept_from_its_first_ground_row_samples_as_the_whole_frame(
    camera: Calibration,
) -> None:
    """Every weighted pixel of every tile a frame sees is the same from the rows the projector
    keeps as from the whole frame (noise, so any misplaced row would show)."""
    projector = FrameProjector(camera)
    frame = np.random.default_rng(7).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    kept = projector.ground_rows(frame)
    assert kept.shape[0] == camera.height_px - projector.first_ground_row
    compared = 0
    for heading in (0.0, 37.0, 200.0):
        pose = FramePose(LON, LAT, heading, 0.0)
        for tile in projector.tiles(pose):
            whole, part = projector.sample(frame, pose, tile), projector.sample(kept, pose, tile)
            if whole is None or part is None:
                assert whole is None and part is None
                continue
            assert np.array_equal(whole.weight, part.weight)
            seen = whole.weight > 0
            assert np.array_equal(whole.image[seen], part.image[seen])
            compared += 1
    assert compared > 10


def test_the_sky_above_the_farthest_ground_is_not_kept() -> None:
    """A dashcam pitched down by 6 degrees sees its farthest ground (25 m) just below the
    horizon: the rows above, over 40 % of the frame, are not kept."""
    projector = FrameProjector(CAMERA)
    horizon = CAMERA.height_px / 2 - CAMERA.focal_px * math.tan(math.radians(CAMERA.pitch_deg))
    assert horizon < projector.first_ground_row < horizon + 40
    assert projector.first_ground_row > 0.4 * CAMERA.height_px


def test_the_kept_rows_do_not_hold_on_to_the_whole_decoded_frame() -> None:
    """The cache counts the kept rows' bytes: they must be all the memory they keep."""
    projector = FrameProjector(CAMERA)
    frame = np.zeros((CAMERA.height_px, CAMERA.width_px, 3), np.uint8)
    kept = projector.ground_rows(frame)
    assert not np.shares_memory(kept, frame)
    assert kept.base is None and kept.flags.c_contiguous
