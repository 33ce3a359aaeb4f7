"""Checks of one uploaded object: its bytes are the frame it claims to be, and a sane JPEG.

Decoding is the dangerous step (decompression bombs, malformed files), so the header is judged
before any pixel is decoded, and the pixels are decoded at an eighth of their size (JPEG's DCT
scaling): every byte is still read and checked, at a fraction of the cost. Frames narrower than
8 x `pixelmatch.COMPARE_WIDTH_PX` are decoded once more, finer, for the comparison thumbnail (the
perceptual hash stays that of the eighth, as it always was).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import imagehash
from PIL import Image, UnidentifiedImageError

from ingest.pixelmatch import Thumbnail, decode_request, make_thumbnail
from ingest.settings import ValidationSettings

PHASH_BANDS = 4
PHASH_BAND_BITS = 16
DRAFT_SCALE = 8


@dataclass(frozen=True)
class Rejection:
    """Why a frame is quarantined: a short machine-readable reason and a sentence for people."""

    reason: str
    detail: str


@dataclass(frozen=True)
class ImageFacts:
    """What decoding an accepted object told us."""

    width: int
    height: int
    phash: int  # 64 bits, unsigned
    thumbnail: Thumbnail = field(repr=False, compare=False)


def check_bytes(data: bytes, frame_id: str, size_bytes: int) -> Rejection | None:
    """The object's bytes are exactly the frame the manifest names."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != frame_id or len(data) != size_bytes:
        return Rejection(
            "hash_mismatch",
            f"the object ({len(data)} bytes, sha256 {digest[:12]}) is not the frame the manifest "
            f"names ({size_bytes} bytes, sha256 {frame_id[:12]})",
        )
    return None


def inspect_image(data: bytes, settings: ValidationSettings) -> ImageFacts | Rejection:
    """Decode the object safely and describe it, or say why it cannot be a keyframe."""
    with warnings.catch_warnings():
        # Pillow warns before it refuses; treat its bomb warning as the refusal it announces.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                problem = _header_problem(image, settings)
                if problem is not None:
                    return problem
                width, height = image.size
                image.draft("L", (width // DRAFT_SCALE, height // DRAFT_SCALE))
                image.load()
                return ImageFacts(
                    width, height, _phash(image), _thumbnail(data, image, width, height)
                )
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return Rejection("decompression_bomb", f"refused to decode: {exc}")
        except UnidentifiedImageError:
            return Rejection("undecodable", "the object is not an image format Pillow can identify")
        except (OSError, SyntaxError, ValueError) as exc:
            return Rejection("undecodable", f"the object is not a readable JPEG: {exc}")


def _header_problem(image: Image.Image, settings: ValidationSettings) -> Rejection | None:
    if image.format != "JPEG":
        return Rejection("not_jpeg", f"the object is {image.format or 'unknown'}, not a JPEG")
    width, height = image.size
    if width > settings.max_width_px or height > settings.max_height_px:
        return Rejection(
            "decompression_bomb",
            f"{width}x{height} px is above the {settings.max_width_px}x{settings.max_height_px} limit",
        )
    if width < settings.min_width_px or height < settings.min_height_px:
        return Rejection(
            "too_small",
            f"{width}x{height} px is below the {settings.min_width_px}x{settings.min_height_px} minimum",
        )
    return None


def _thumbnail(data: bytes, decoded: Image.Image, width: int, height: int) -> Thumbnail:
    """The comparison thumbnail, from the eighth already decoded when that is wide enough."""
    if decoded.size[0] >= decode_request(width, height)[0]:
        return make_thumbnail(decoded, width)
    with Image.open(io.BytesIO(data)) as finer:
        finer.draft("L", decode_request(width, height))
        finer.load()
        return make_thumbnail(finer, width)


def _phash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def phash_bands(phash: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands of a 64-bit hash (near-duplicates share at least one)."""
    mask = (1 << PHASH_BAND_BITS) - 1
    bands = tuple((phash >> (PHASH_BAND_BITS * i)) & mask for i in range(PHASH_BANDS))
    return bands[0], bands[1], bands[2], bands[3]


def to_signed64(value: int) -> int:
    """An unsigned 64-bit value as the signed integer a BIGINT column holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    """The inverse of `to_signed64`."""
    return value + (1 << 64) if value < 0 else value


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes."""
    return (to_unsigned64(a) ^ to_unsigned64(b)).bit_count()
