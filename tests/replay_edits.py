"""Replays of a captured frame, and second captures of the same place, made from one picture: the
cases the pixel comparison of near-duplicates must tell apart (tests and `bench.bench_replay`).

A "capture" is a window of the picture as a camera would frame it; a second capture from a little
further on is the same view zoomed by a few per cent and shifted, with its own exposure and sensor
noise. Real second captures differ more (parallax, traffic): this is the hard case.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from ingest.imagecheck import ImageFacts, inspect_image
from ingest.pixelmatch import Thumbnail, agreement
from ingest.settings import ValidationSettings

FRAMED = 0.86  # a capture shows this share of the picture's width and height
EXIF_APP1 = b"\xff\xe1"
# The shared photos are small; only captures of them would be refused, as too small.
SMALL_OK = ValidationSettings(min_width_px=64, min_height_px=64)


def textured_picture(seed: int, size: tuple[int, int] = (1400, 1000)) -> Image.Image:
    """A street-photo stand-in: texture at every scale (octaves of noise, stronger when coarser)
    and hard edges (rectangles), in colour."""
    rng = np.random.default_rng(seed)
    width, height = size
    grey = np.zeros((height, width), np.float32)
    for octave in range(2, 9):
        cells = rng.normal(0.0, 1.0, (2**octave * height // width + 2, 2**octave + 2))
        layer = cv2.resize(cells.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
        grey += layer / 2**octave
    for _ in range(12):
        x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 100))
        w, h = int(rng.integers(40, 300)), int(rng.integers(40, 300))
        grey[y : y + h, x : x + w] += rng.normal(0.0, 0.4)
    grey = (grey - grey.min()) / (grey.max() - grey.min()) * 190 + 30
    tint = np.array([1.0, 0.95, 0.9], np.float32)
    return Image.fromarray(np.clip(grey[:, :, None] * tint, 0, 255).astype(np.uint8))


def encode(image: Image.Image, quality: int = 90, *, exif: bytes = b"") -> bytes:
    """A JPEG of `image` (RGB) at `quality`, with `exif` when given."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def capture(
    picture: Image.Image,
    *,
    shift: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
    gain: float = 1.0,
    noise: float = 0.0,
    seed: int = 0,
) -> bytes:
    """A frame of `picture`: the centred window (moved by `shift`, a share of the size, and
    narrowed by `zoom`) at the size a zoom of 1 gives, its brightness times `gain`, with Gaussian
    sensor noise of `noise` grey levels. Carries an EXIF block, as a camera's file does."""
    width, height = picture.size
    out = (round(FRAMED * width), round(FRAMED * height))
    half_w, half_h = FRAMED * width / zoom / 2, FRAMED * height / zoom / 2
    cx, cy = width * (0.5 + shift[0]), height * (0.5 + shift[1])
    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    framed = picture.convert("RGB").resize(out, Image.Resampling.BICUBIC, box=box)
    pixels = np.asarray(framed, np.float32) * gain
    if noise:
        pixels += np.random.default_rng(seed).normal(0.0, noise, pixels.shape)
    exif = Image.Exif()
    exif[0x010F] = "roadswarm-test-camera"  # Make
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), exif=exif.tobytes())


def second_captures(picture: Image.Image, seed: int) -> dict[str, bytes]:
    """The same place from a little further on: zoomed by 1 to 5 % and shifted by up to 4 %,
    8 % brighter, with sensor noise. From 2 % on they must not count as replays; 1 % is listed to
    show where the comparison's resolution ends."""
    views = {
        "zoom 1%": ((0.0, 0.0), 1.01),
        "zoom 1%, shift 2%": ((0.02, 0.0), 1.01),
        "zoom 2%": ((0.0, 0.0), 1.02),
        "zoom 2%, shift 3%,1%": ((0.03, 0.01), 1.02),
        "zoom 3%, shift 4%": ((0.04, 0.0), 1.03),
        "zoom 5%, shift 3%,2%": ((0.03, 0.02), 1.05),
    }
    return {
        name: capture(picture, shift=shift, zoom=zoom, gain=1.08, noise=2.0, seed=seed)
        for name, (shift, zoom) in views.items()
    }


def replays(frame: bytes) -> dict[str, bytes]:
    """Copies of `frame` a replaying device might upload: each must still count as a replay."""
    image = Image.open(io.BytesIO(frame)).convert("RGB")
    width, height = image.size
    pixels = np.asarray(image, np.float32) / 255
    half = (width // 2, height // 2)
    return {
        "EXIF stripped": strip_exif(frame),
        **{f"JPEG q{q}": encode(image, q) for q in (50, 70, 95)},
        "half size": encode(image.resize(half, Image.Resampling.LANCZOS), 85),
        "half size and back": encode(_down_and_up(image, 0.5), 85),
        "3/4 size and back": encode(_down_and_up(image, 0.75), 85),
        "crop 2% right+bottom, q60": encode(_crop(image, 0, 0, 0.02, 0.02), 60),
        "crop 3% all round": encode(_crop(image, 0.03, 0.03, 0.03, 0.03), 85),
        "crop 5% left+top": encode(_crop(image, 0.05, 0.05, 0, 0), 85),
        "brightness +25%": encode(ImageEnhance.Brightness(image).enhance(1.25), 85),
        "brightness -25%": encode(ImageEnhance.Brightness(image).enhance(0.75), 85),
        "contrast -30%": encode(ImageEnhance.Contrast(image).enhance(0.7), 85),
        "contrast +30%": encode(ImageEnhance.Contrast(image).enhance(1.3), 85),
        "gamma 0.7": encode(Image.fromarray((255 * pixels**0.7).astype(np.uint8)), 85),
    }


def rescaled_crops(frame: bytes) -> dict[str, bytes]:
    """Copies that crop and then change the scale: the same geometry as a step forward, so the
    comparison does not promise to catch them (listed to show what escapes)."""
    image = Image.open(io.BytesIO(frame)).convert("RGB")
    width, height = image.size
    cropped = _crop(image, 0.03, 0.02, 0.01, 0.03)
    smaller = cropped.resize((cropped.width * 3 // 4, cropped.height * 3 // 4))
    return {
        "crop 1% all round, stretched back": encode(
            _crop(image, 0.01, 0.01, 0.01, 0.01).resize((width, height), Image.Resampling.BICUBIC)
        ),
        "crop, +10% brightness, 3/4 size, q60": encode(
            ImageEnhance.Brightness(smaller).enhance(1.1), 60
        ),
    }


def strip_exif(jpeg: bytes) -> bytes:
    """`jpeg` without its APP1 (EXIF) segment: other bytes, the very same pixels."""
    start = jpeg.find(EXIF_APP1, 2)
    if start < 0:
        return jpeg
    length = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    return jpeg[:start] + jpeg[start + 2 + length :]


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    width, height = image.size
    box = (round(left * width), round(top * height), round((1 - right) * width))
    return image.crop((*box, round((1 - bottom) * height)))


def _down_and_up(image: Image.Image, scale: float) -> Image.Image:
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS).resize(image.size, Image.Resampling.BICUBIC)


def thumbnail_of(data: bytes) -> Thumbnail:
    """The comparison thumbnail validation makes of `data`."""
    facts = inspect_image(data, SMALL_OK)
    assert isinstance(facts, ImageFacts), facts
    return facts.thumbnail


def agreements(picture: Image.Image, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Pixel agreement of each replay, and of each second capture, with a capture of `picture`."""
    frame = capture(picture, seed=seed)
    first = thumbnail_of(frame)
    copies = {name: agreement(first, thumbnail_of(data)) for name, data in replays(frame).items()}
    views = second_captures(picture, seed)
    return copies, {name: agreement(first, thumbnail_of(data)) for name, data in views.items()}


def resolved(scores: dict[str, float]) -> dict[str, float]:
    """The second captures the comparison promises to tell apart (a 1 % zoom is below its
    resolution)."""
    return {name: score for name, score in scores.items() if not name.startswith("zoom 1%")}
