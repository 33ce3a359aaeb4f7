"""Pixel agreement of near-duplicates: replays of a capture agree, second captures of the place do
not (synthetic texture; tests/integration/test_replay_real_photos.py has real street photos)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.pixelmatch import Thumbnail, agreement
from ingest.settings import ValidationSettings
from tests.replay_edits import (
    agreements,
    capture,
    replays,
    resolved,
    textured_picture,
    thumbnail_of,
)

LIMIT = ValidationSettings().replay_min_agreement


@pytest.mark.parametrize("seed", [0, 1])
def test_replays_agree_and_second_captures_do_not(seed: int) -> None:
    """Re-encoded, resized, cropped, brightened copies reach the limit; a 2 % zoom does not."""
    copies, others = agreements(textured_picture(seed), seed)
    assert {name: score for name, score in copies.items() if score < LIMIT} == {}
    assert {name: score for name, score in resolved(others).items() if score >= LIMIT} == {}


def test_different_pictures_and_textureless_frames_do_not_agree() -> None:
    """Another scene is far from a replay; a frame without texture gives no evidence (0)."""
    first = thumbnail_of(capture(textured_picture(0)))
    assert agreement(first, thumbnail_of(capture(textured_picture(7)))) < 0.5
    flat = Thumbnail(np.full((135, 240), 128, np.uint8), 1920)
    assert agreement(flat, flat) == 0.0


def test_a_crop_is_compared_at_its_own_pixel_pitch() -> None:
    """A 5 % crop (narrower file, same pitch) agrees; so does a half-size copy (same view)."""
    frame = capture(textured_picture(3))
    first = thumbnail_of(frame)
    cropped, halved = (thumbnail_of(replays(frame)[k]) for k in ("crop 5% left+top", "half size"))
    assert cropped.width_px < first.width_px and halved.width_px < cropped.width_px
    assert agreement(first, cropped) >= LIMIT
    assert agreement(first, halved) >= LIMIT
