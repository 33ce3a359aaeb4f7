"""A keyframe as it leaves the device: an anonymized JPEG with only the EXIF a map needs, named by
the sha256 of its bytes, and the record that describes it."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from PIL.ExifTags import GPS, IFD, Base

from edge.track import Pose

JPEG_QUALITY = 90
# Centimetres: the server takes the steps between keyframes from `travelled_m`, to about 0.1 m.
TRAVELLED_DECIMALS = 2


@dataclass(frozen=True)
class KeyframeRecord:
    """What the ingest API learns about a keyframe besides its pixels."""

    frame_id: str
    capture_time: str
    lat: float
    lon: float
    altitude_m: float | None
    heading_deg: float
    speed_mps: float
    hdop: float | None
    sequence_id: str
    index: int  # position in the sequence's plan: the same after a crash and a re-run
    # Metres along the trip at this frame (Doppler speed integrated): orders keyframes, adds up
    # to km mapped, and is uploaded as the odometry the server places keyframes along the road by.
    travelled_m: float
    source_frame: int
    model_versions: dict[str, str]


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    degrees = abs(value)
    whole = int(degrees)
    minutes = (degrees - whole) * 60
    return (
        Fraction(whole),
        Fraction(int(minutes)),
        Fraction(round((minutes - int(minutes)) * 60 * 10_000), 10_000),
    )


def map_exif(pose: Pose, when: datetime) -> Image.Exif:
    """Position, altitude, time and direction; nothing about the camera or its owner."""
    exif = Image.Exif()
    exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[GPS.GPSLatitudeRef], gps[GPS.GPSLatitude] = ("N" if pose.lat >= 0 else "S"), _dms(pose.lat)
    gps[GPS.GPSLongitudeRef], gps[GPS.GPSLongitude] = (
        ("E" if pose.lon >= 0 else "W"),
        _dms(pose.lon),
    )
    if pose.altitude_m is not None:
        gps[GPS.GPSAltitudeRef] = b"\x00" if pose.altitude_m >= 0 else b"\x01"
        gps[GPS.GPSAltitude] = Fraction(round(abs(pose.altitude_m) * 100), 100)
    gps[GPS.GPSImgDirectionRef], gps[GPS.GPSImgDirection] = (
        "T",
        Fraction(round(pose.heading_deg * 100), 100),
    )
    utc = when.astimezone(UTC)
    gps[GPS.GPSTimeStamp] = (
        Fraction(utc.hour),
        Fraction(utc.minute),
        Fraction(round(utc.second + utc.microsecond / 1e6, 3)).limit_denominator(1000),
    )
    gps[GPS.GPSDateStamp] = utc.strftime("%Y:%m:%d")
    return exif


def encode_keyframe(image_bgr: NDArray[np.uint8], pose: Pose, when: datetime) -> tuple[bytes, str]:
    """JPEG bytes with the map EXIF, and their sha256 (the frame id)."""
    rgb = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY, exif=map_exif(pose, when))
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()
