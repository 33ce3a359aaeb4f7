"""Frames as the tile stage reads them: an accepted frame's JPEG from the object store, decoded."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np

from ingest.errors import ObjectCorruptError, ObjectNotFoundError
from ingest.storage import ObjectStore
from mapbuilder.errors import MapError
from mapbuilder.tiles.bev import U8Image
from mapbuilder.tiles.shared_frames import SharedFrames


class FrameUnreadableError(MapError):
    """An accepted frame whose object is gone, damaged, or does not decode; `reason` is the
    quarantine reason it earns (`object_missing`, `hash_mismatch` or `undecodable`)."""

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


def read_frame(
    store: ObjectStore, frame_id: str, object_key: str, *, grey: bool = False
) -> U8Image:
    """The frame's pixels: RGB, or grey; `FrameUnreadableError` saying why not.

    Other store errors (an unreachable store) pass through: they are transient, and the task
    that met them is retried."""
    try:
        data = store.get_bytes(object_key)
    except ObjectNotFoundError as exc:
        msg = f"frame {frame_id} cannot be read: {exc}"
        raise FrameUnreadableError(msg, "object_missing") from exc
    except ObjectCorruptError as exc:
        msg = f"frame {frame_id} cannot be read: {exc}"
        raise FrameUnreadableError(msg, "hash_mismatch") from exc
    # A frame's id is the sha256 of its bytes: bytes damaged in the store after the frame was
    # accepted often still decode, and would put garbage into the map.
    digest = hashlib.sha256(data).hexdigest()
    if digest != frame_id:
        msg = (
            f"frame {frame_id} cannot be read: the object {object_key} has sha256 {digest}, not "
            "the frame's (damaged or replaced in the store since it was accepted)"
        )
        raise FrameUnreadableError(msg, "hash_mismatch")
    flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR_RGB
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        msg = f"frame {frame_id} cannot be read: its JPEG ({object_key}) does not decode"
        raise FrameUnreadableError(msg)
    return np.asarray(image, np.uint8)


# Decoded frames kept by a tile builder: a 1080p RGB frame is 6 MB (about half of it kept). Frames
# near a block's edge are needed again by the next block; one worker process keeps them across
# the blocks it builds.
CACHE_BYTES = 320 * 1024 * 1024


class DecodedFrames:
    """Decoded frames by key (a frame's bytes never change: its id is their sha256), least
    recently used dropped first once they hold more than `budget_bytes` (the newest is kept).

    With `shared`, a frame this process does not hold is first looked for there (another pool
    process may have decoded it), and one it decodes is put there for the others."""

    def __init__(self, budget_bytes: int = CACHE_BYTES, shared: SharedFrames | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.shared = shared
        self._pixels: OrderedDict[str, U8Image] = OrderedDict()
        self._bytes = 0

    def get(self, key: str, load: Callable[[], U8Image]) -> U8Image:
        """The pixels under `key`, from `load()` when not held (its errors pass through)."""
        if key in self._pixels:
            self._pixels.move_to_end(key)
            return self._pixels[key]
        pixels = self._from_shared(key)
        if pixels is None:
            pixels = np.ascontiguousarray(load())
            if self.shared is not None:
                self.shared.put(key, pixels)
        self._pixels[key] = pixels
        self._bytes += pixels.nbytes
        while self._bytes > self.budget_bytes and len(self._pixels) > 1:
            _, dropped = self._pixels.popitem(last=False)
            self._bytes -= dropped.nbytes
        return pixels

    def _from_shared(self, key: str) -> U8Image | None:
        return None if self.shared is None else self.shared.get(key)
