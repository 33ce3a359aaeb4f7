"""A V4L2 or CSI camera through OpenCV, each frame stamped with the system clock.

The system clock is taken to be on GNSS time (gpsd feeding chrony, as on a dashcam with a
receiver); `clock_offset_s` corrects a known difference.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.capture.source import CaptureError, Frame, FrameSource, Unreadable

# This many failed reads in a row mean the camera is gone (unplugged, driver crashed).
MAX_FAILED_READS = 30


def camera_name(device: int | str) -> str:
    """A short name for sequence ids: `cam0` for index 0, `video2` for /dev/video2."""
    return f"cam{device}" if isinstance(device, int) else Path(device).name


class CameraSource(FrameSource):
    """Frames from `device` (an index such as 0, or a path such as /dev/video0 or a GStreamer
    pipeline OpenCV understands), optionally asking for a resolution and rate."""

    live = True

    def __init__(
        self,
        device: int | str,
        *,
        width_px: int | None = None,
        height_px: int | None = None,
        fps: float | None = None,
        clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__(camera_name(device))
        self.device = device
        self.clock_offset_s = clock_offset_s
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            self._capture.release()
            msg = f"cannot open camera {device!r}: check it is connected and not in use (ls /dev/video*)"
            raise CaptureError(msg)
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width_px),
            (cv2.CAP_PROP_FRAME_HEIGHT, height_px),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value:
                self._capture.set(prop, float(value))

    def frames(self) -> Iterator[Frame | Unreadable]:
        index, failed, last_s = 0, 0, 0.0
        while True:
            ok, image = self._capture.read()
            # Stamped as soon as the read returns: the frame was exposed just before.
            t_s = time.time() + self.clock_offset_s
            if not ok:
                failed += 1
                if failed >= MAX_FAILED_READS:
                    msg = f"camera {self.device!r} stopped giving frames ({failed} failed reads): check its cable and driver"
                    raise CaptureError(msg)
                yield Unreadable(index, "the camera gave no frame")
                index += 1
                continue
            failed = 0
            if t_s <= last_s:  # the clock stepped back (NTP): never hand out time going backwards
                yield Unreadable(index, "the system clock went backwards")
            else:
                last_s = t_s
                yield Frame(
                    index, t_s, datetime.fromtimestamp(t_s, UTC), np.asarray(image, np.uint8)
                )
            index += 1

    def close(self) -> None:
        self._capture.release()
