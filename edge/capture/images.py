"""A folder of images as a frame source: in name order, timed by their EXIF DateTimeOriginal or,
given a rate, by their order from a start time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.ExifTags import IFD, Base

from edge.capture.source import CaptureError, Frame, FrameSource, Unreadable

SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
EXIF_TIME = "%Y:%m:%d %H:%M:%S"


def exif_time(path: Path) -> datetime | str:
    """When the image was taken (DateTimeOriginal, with SubsecTimeOriginal and
    OffsetTimeOriginal where present; UTC when no offset is given), or why it is not known."""
    try:
        with Image.open(path) as image:
            tags = image.getexif().get_ifd(IFD.Exif)
    except (OSError, UnidentifiedImageError) as exc:
        return f"cannot read its EXIF ({exc})"
    original = tags.get(Base.DateTimeOriginal)
    if not original:
        return "no EXIF DateTimeOriginal: give a frame rate and start time instead"
    try:
        when = datetime.strptime(str(original).strip(), EXIF_TIME)
        offset = str(tags.get(Base.OffsetTimeOriginal, "") or "+00:00").strip()
        when = datetime.fromisoformat(f"{when.isoformat()}{offset}")
    except ValueError:
        return f"EXIF DateTimeOriginal {original!r} is not YYYY:MM:DD HH:MM:SS"
    subsec = str(tags.get(Base.SubsecTimeOriginal, "") or "").strip()
    try:
        if subsec.isdigit():
            when += timedelta(seconds=float(f"0.{subsec}"))
        return when.astimezone(UTC)
    except (OverflowError, ValueError):  # an offset that pushes year 1 or 9999 out of range
        return f"EXIF DateTimeOriginal {original!r} with offset {offset!r} is out of range"


class ImageFolderSource(FrameSource):
    """The .jpg/.jpeg/.png files directly in `folder`, in name order.

    Without `rate_hz` each image is timed by its EXIF; with it, image i is taken at
    `start + i / rate_hz`. Images that cannot be read or timed, or whose time does not come after
    the previous one, are returned as `Unreadable` with the reason.
    """

    def __init__(
        self, folder: Path, *, rate_hz: float | None = None, start: datetime | None = None
    ) -> None:
        super().__init__(folder.name)
        if not folder.is_dir():
            msg = f"{folder} is not a folder of images"
            raise CaptureError(msg)
        if rate_hz is not None and (rate_hz <= 0 or start is None):
            msg = "timing images by their order needs a positive rate and a start time"
            raise CaptureError(msg)
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if not self.paths:
            msg = f"{folder} holds no .jpg, .jpeg or .png images"
            raise CaptureError(msg)
        self.rate_hz = rate_hz
        self.start = start

    def frames(self) -> Iterator[Frame | Unreadable]:
        last: datetime | None = None
        for index, path in enumerate(self.paths):
            when = self._time(index, path)
            if isinstance(when, str):
                yield Unreadable(index, f"{path.name}: {when}")
                continue
            if last is not None and when <= last:
                yield Unreadable(
                    index, f"{path.name}: taken {when.isoformat()}, not after the image before"
                )
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                yield Unreadable(index, f"{path.name}: not a readable JPEG or PNG image")
                continue
            last = when
            yield Frame(index, when.timestamp(), when, np.asarray(image, np.uint8))

    def _time(self, index: int, path: Path) -> datetime | str:
        if self.rate_hz is not None and self.start is not None:
            return self.start + timedelta(seconds=index / self.rate_hz)
        return exif_time(path)

    def close(self) -> None:
        """Nothing is held open between images."""
