"""Raw frames at rest: lossless PNG, sealed with AES-GCM under a key that never leaves the device.

The key is 32 random bytes in `raw.key` beside the device identity, created on first use with mode
600 (never replaced: frames sealed under it would be lost). Each frame gets a fresh 96-bit nonce,
and its label (sequence and position) is authenticated with it, so a blob cannot be passed off as
another candidate. PNG keeps the pixels exact: the keyframe made from a raw frame is byte for byte
the one `edge process` makes from the decoded video.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import NDArray

from edge.errors import EdgeError

KEY_FILE = "raw.key"
KEY_BYTES = 32
NONCE_BYTES = 12
# zlib level 1: a 1080p frame in about 90 ms on one core; higher levels save little on camera noise.
PNG_LEVEL = 1

U8Image = NDArray[np.uint8]


class RawKeyError(EdgeError):
    """The raw-frame key is unreadable, readable by others, or damaged."""


def raw_key(folder: Path) -> bytes:
    """The device's raw-frame key, created (mode 600) if there is none yet."""
    path = folder / KEY_FILE
    if not path.exists():
        _create_key(path)
    try:
        if path.stat().st_mode & 0o077:
            msg = f"{path} is readable by other users: run `chmod 600 {path}`"
            raise RawKeyError(msg)
        key = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the raw-frame key {path} ({exc.strerror}): check the identity folder"
        raise RawKeyError(msg) from exc
    if len(key) != KEY_BYTES:
        msg = f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key: restore it from backup"
        raise RawKeyError(msg)
    return key


def _create_key(path: Path) -> None:
    """Write a new key; if another process made one meanwhile, theirs stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if a key appeared meanwhile: never replace one
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


class RawCipher:
    """Seals frames into blobs and opens them again."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, image: U8Image, label: str) -> bytes:
        """The frame as nonce + AES-GCM(PNG), bound to `label`."""
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        if not ok:
            msg = f"cannot encode a frame of shape {image.shape} as PNG"
            raise ValueError(msg)
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, png.tobytes(), label.encode())

    def open(self, blob: bytes, label: str) -> U8Image | str:
        """The frame, or why it cannot be trusted (then it must not be used)."""
        try:
            png = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], label.encode())
        except (InvalidTag, ValueError):
            return "the raw frame failed its integrity check (damaged, or sealed under another key)"
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return "the raw frame does not decode"
        return np.asarray(image, np.uint8)
