"""Perceptual-hash bands and signed storage: near-duplicates must be findable by index."""

from __future__ import annotations

import random

from ingest.imagecheck import hamming, phash_bands, to_signed64, to_unsigned64


def test_hashes_within_three_bits_share_a_band() -> None:
    """Pigeonhole: 3 flipped bits touch at most 3 of the 4 bands, so one band stays equal."""
    rng = random.Random(1)
    for _ in range(2000):
        value = rng.getrandbits(64)
        other = value
        for bit in rng.sample(range(64), 3):
            other ^= 1 << bit
        assert hamming(value, other) == 3
        assert any(a == b for a, b in zip(phash_bands(value), phash_bands(other), strict=True))


def test_signed_storage_round_trips() -> None:
    """Unsigned 64-bit hashes survive a signed BIGINT column."""
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        stored = to_signed64(value)
        assert -(1 << 63) <= stored < 1 << 63
        assert to_unsigned64(stored) == value
    assert hamming(to_signed64((1 << 64) - 1), 0) == 64
