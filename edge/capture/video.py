"""A recorded video file as a frame source, its first frame at a given instant on the GNSS clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from edge.capture.source import Frame, FrameSource, Unreadable
from edge.process import open_video


class VideoFileSource(FrameSource):
    """Every frame of a video, timed `start + index / fps` exactly as `edge process` times them.

    With `realtime`, frames are handed out no faster than they were recorded, as a camera would.
    A truncated file ends early, like the camera being switched off.
    """

    def __init__(self, video: Path, start: datetime, *, realtime: bool = False) -> None:
        super().__init__(video.stem)
        self.video = video
        self.start = start
        self.realtime = realtime
        self._capture, self.fps, self.count = open_video(video)

    def frames(self) -> Iterator[Frame | Unreadable]:
        began = time.monotonic()
        start_s = self.start.timestamp()
        for index in range(self.count):
            if self.realtime:
                time.sleep(max(0.0, began + index / self.fps - time.monotonic()))
            ok, image = self._capture.read()
            if not ok:
                return
            offset = index / self.fps
            when = self.start + timedelta(seconds=offset)
            yield Frame(index, start_s + offset, when, np.asarray(image, np.uint8))

    def close(self) -> None:
        self._capture.release()

    def sequence_id(self, first: Frame) -> str:
        """Named by the video's start, as `edge process` names it, whichever frame comes first."""
        return f"{self.name}-{self.start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
