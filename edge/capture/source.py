"""What every frame source gives: frames in capture order, each with its time on the GNSS clock,
and the frames it could not read as values with the reason."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from edge.errors import EdgeError

U8Image = NDArray[np.uint8]


class CaptureError(EdgeError):
    """A source that cannot be opened or stopped delivering frames altogether."""


@dataclass(frozen=True)
class Frame:
    """One captured frame: its place in the source, when it was taken, and its pixels (BGR)."""

    index: int
    t_s: float  # POSIX seconds on the GNSS UTC clock: what poses are interpolated at
    when: datetime  # the same instant, as the keyframe's record and EXIF state it
    image: U8Image


@dataclass(frozen=True)
class Unreadable:
    """A frame (or image file) the source could not use, and why."""

    index: int
    reason: str


class FrameSource(ABC):
    """Frames from one camera or recording."""

    #: A live source loses frames it is not read in time; a recording can wait for GNSS.
    live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def frames(self) -> Iterator[Frame | Unreadable]:
        """Frames in capture order (times strictly increasing), until the source ends."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file."""

    def sequence_id(self, first: Frame) -> str:
        """The id of the sequence that starts with `first`: source name and UTC start, the same
        id `edge process` gives a recording."""
        return f"{self.name}-{first.when.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
