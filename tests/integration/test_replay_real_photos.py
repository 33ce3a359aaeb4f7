"""Replays and second captures made from real street photos (../shared/data/privacy, evaluation
only): the pixel comparison of near-duplicates must tell them apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ingest.settings import ValidationSettings
from tests.replay_edits import agreements, resolved

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "privacy"
pytestmark = pytest.mark.skipif(not PHOTOS.is_dir(), reason="shared street photos not present")


def test_on_real_street_photos() -> None:
    """Every 20th shared photo: all replays reach the limit, no second capture zoomed 2 % does."""
    limit = ValidationSettings().replay_min_agreement
    photos = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    missed, false_alarms = {}, {}
    for seed, path in enumerate(photos[::20]):
        copies, others = agreements(Image.open(path), seed)
        missed.update({(path.name, k): v for k, v in copies.items() if v < limit})
        false_alarms.update({(path.name, k): v for k, v in resolved(others).items() if v >= limit})
    assert len(photos) >= 100
    assert missed == {}
    assert false_alarms == {}
