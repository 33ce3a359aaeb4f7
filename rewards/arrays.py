"""The scoring core's inputs as flat numpy arrays: millions of frames never become Python objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Int32Array = NDArray[np.int32]
Int8Array = NDArray[np.int8]
ByteMatrix = NDArray[np.uint8]
BoolArray = NDArray[np.bool_]

FORWARD, BACKWARD = 0, 1
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class SegmentTable:
    """Every road segment frames may be matched to, sorted by id (index = segment code)."""

    segment_ids: list[str]
    length_m: FloatArray
    road_class: list[str]
    center_lon: FloatArray
    center_lat: FloatArray

    def index(self) -> dict[str, int]:
        """Segment id to code."""
        return {segment_id: i for i, segment_id in enumerate(self.segment_ids)}


@dataclass(frozen=True)
class EpochFrames:
    """The accepted, matched frames captured in one epoch.

    `devices` is sorted, so comparing device codes compares device ids (the tie-break rule);
    `frame_ids` holds the raw 32-byte sha256 of each frame; `hdop` is NaN where unknown."""

    devices: list[str]
    device: Int32Array
    segment: Int32Array
    direction: Int8Array
    offset_m: FloatArray
    distance_m: FloatArray
    hdop: FloatArray
    time_ms: IntArray
    frame_ids: ByteMatrix

    def __len__(self) -> int:
        return len(self.time_ms)

    def take(self, order: NDArray[np.intp]) -> EpochFrames:
        """The same frames in another order (tests shuffle them)."""
        return EpochFrames(
            self.devices,
            self.device[order],
            self.segment[order],
            self.direction[order],
            self.offset_m[order],
            self.distance_m[order],
            self.hdop[order],
            self.time_ms[order],
            self.frame_ids[order],
        )


@dataclass(frozen=True)
class History:
    """Where and when accepted frames were captured before the epoch (for freshness)."""

    segment: Int32Array
    direction: Int8Array
    offset_m: FloatArray
    time_ms: IntArray

    @classmethod
    def empty(cls) -> History:
        """No earlier captures at all."""
        return cls(
            np.zeros(0, np.int32),
            np.zeros(0, np.int8),
            np.zeros(0, np.float64),
            np.zeros(0, np.int64),
        )


def frame_id_matrix(frame_ids: list[str]) -> ByteMatrix:
    """Hex sha256 ids as an (n, 32) byte matrix."""
    raw = bytes.fromhex("".join(frame_ids))
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(frame_ids), 32)
