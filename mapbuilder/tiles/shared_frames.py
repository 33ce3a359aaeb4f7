"""Decoded frames shared by the pool processes of one worker host, in a RAM-backed folder.

Two processes building neighbouring blocks need the frames between them: without sharing, each
decodes them (a 1080p JPEG is ~6 ms, about a sixth of what a frame costs the tile stage). The first
to decode a frame writes its kept rows here; the others map the file read-only instead of
decoding. A file is written under a temporary name and renamed, so a reader sees a whole file or
none; one that does not match its header is ignored and written again. The folder is bounded:
past `budget_bytes`, the least recently used files are deleted (a process that still maps one
keeps its pages until it lets go).

The worker's main process makes the folder before it forks its pool and removes it when it
stops (`worker_folder`, `remove_folder`); folders of workers that died are removed when the next
one starts. Sharing is an optimisation: when the folder is missing or full, frames are decoded
as if it were not there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mapbuilder.tiles.bev import U8Image

log = logging.getLogger(__name__)

FOLDER_PREFIX = "roadswarm-frames-"
HEADER_BYTES = 64
_MAGIC = b"roadswarm-frame-v1"
# Deleting down to this share of the budget, not just under it, spares a scan of the folder
# at every write once it is full.
_EVICT_TO = 0.8
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only


class SharedFrames:
    """Decoded frames in `folder`, by key, shared between processes; at most `budget_bytes`."""

    def __init__(self, folder: Path, budget_bytes: int) -> None:
        self.folder = folder
        # At most half the file system: a container's /dev/shm can be as small as 64 MB.
        with contextlib.suppress(OSError):
            budget_bytes = min(budget_bytes, shutil.disk_usage(folder).total // 2)
        self.budget_bytes = budget_bytes
        self._written = 0
        self._failed = False

    def get(self, key: str) -> U8Image | None:
        """The frame under `key`, mapped read-only; None when no whole copy is there."""
        path = self._path(key)
        try:
            with path.open("rb") as file:
                shape = _read_header(file.read(HEADER_BYTES))
                count = 0 if shape is None else int(np.prod(shape))
                if not count or os.fstat(file.fileno()).st_size != HEADER_BYTES + count:
                    return None
                # Populated at once: one call instead of a page fault per 4 kB read.
                mapped = mmap.mmap(
                    file.fileno(),
                    0,
                    flags=mmap.MAP_SHARED | _POPULATE,
                    prot=mmap.PROT_READ,
                )
        except OSError:  # not there, or evicted between the open and the map
            return None
        with contextlib.suppress(OSError):  # evicted meanwhile: the map still holds the pages
            os.utime(path)  # recently used: the last to be evicted
        return np.frombuffer(mapped, np.uint8, count, HEADER_BYTES).reshape(shape)

    def put(self, key: str, pixels: U8Image) -> None:
        """Share `pixels` (uint8, C-contiguous) under `key`; a failure to write is logged once
        and sharing stops for this process, since frames can always be decoded instead."""
        if self._failed:
            return
        try:
            self._write(self._path(key), pixels)
        except OSError as exc:
            self._failed = True
            log.warning(
                "decoded frames are not shared from now on: %s cannot be written (%s)",
                self.folder,
                exc,
            )
            return
        self._written += pixels.nbytes
        if self._written > (1 - _EVICT_TO) * self.budget_bytes:
            self._written = 0
            self.evict()

    def evict(self) -> None:
        """Delete the least recently used files until they hold at most `_EVICT_TO` of the
        budget (only once they hold more than the budget)."""
        files = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # a file another process is still writing
                with contextlib.suppress(FileNotFoundError):
                    stat = entry.stat()
                    files.append((stat.st_mtime_ns, stat.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        if total <= self.budget_bytes:
            return
        for _, size, path in sorted(files):
            if total <= _EVICT_TO * self.budget_bytes:
                break
            with contextlib.suppress(FileNotFoundError):  # another process got there first
                Path(path).unlink()
            total -= size

    def _path(self, key: str) -> Path:
        # Hashed: a key may hold any character, a file name may not.
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def _write(self, path: Path, pixels: U8Image) -> None:
        if pixels.dtype != np.uint8 or not pixels.flags.c_contiguous:
            msg = f"only C-contiguous uint8 frames are shared, not {pixels.dtype}"
            raise ValueError(msg)
        descriptor, name = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
        temporary = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(_header(pixels.shape))
                file.write(pixels.data)
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _header(shape: tuple[int, ...]) -> bytes:
    line = _MAGIC + b" " + b" ".join(str(n).encode() for n in shape) + b"\n"
    return line.ljust(HEADER_BYTES, b" ")


def _read_header(header: bytes) -> tuple[int, ...] | None:
    """The shape a file's header gives; None for a header that is not ours."""
    magic, _, rest = header.partition(b" ")
    if magic != _MAGIC or len(header) != HEADER_BYTES:
        return None
    try:
        shape = tuple(int(n) for n in rest.split(b"\n")[0].split())
    except ValueError:
        return None
    return shape if shape and all(n > 0 for n in shape) else None


def worker_folder(root: Path, owner_pid: int) -> Path:
    """A fresh folder for the pool of the worker process `owner_pid`, under `root`; the folders
    of workers no longer running are removed first (a worker that was killed left its own)."""
    for stale in root.glob(f"{FOLDER_PREFIX}*"):
        pid = stale.name.removeprefix(FOLDER_PREFIX)
        if pid.isdigit() and int(pid) != owner_pid and not _running(int(pid)):
            remove_folder(stale)
    folder = root / f"{FOLDER_PREFIX}{owner_pid}"
    remove_folder(folder)
    folder.mkdir(mode=0o700)
    return folder


def remove_folder(folder: Path) -> None:
    """Remove a folder of shared frames and everything in it."""
    shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running, and not ours to clean up
        return True
    return True
