"""Decoded frames shared by a worker's pool processes (`mapbuilder.tiles.shared_frames`)."""

from __future__ import annotations

import atexit
import hashlib
import logging
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from ingest.storage import LocalObjectStore
from mapbuilder import tile_tasks
from mapbuilder.camera import Calibration
from mapbuilder.settings import TileSettings
from mapbuilder.tiles.bev import FramePose, FrameProjector
from mapbuilder.tiles.frames import DecodedFrames
from mapbuilder.tiles.imagery import BlockFrame, stitch_tiles
from mapbuilder.tiles.shared_frames import FOLDER_PREFIX, SharedFrames, worker_folder

LON, LAT = 24.9384, 60.1699
MB = 1024 * 1024


def _frame(seed: int, rows: int = 100) -> NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (rows, 160, 3), dtype=np.uint8)


class Decode:
    """A decoder of one frame that counts its calls."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self) -> NDArray[np.uint8]:
        self.calls += 1
        return _frame(self.seed)


def _never() -> NDArray[np.uint8]:
    raise AssertionError("decoded, though another process had shared the frame")


def _put_in_another_process(folder: str, key: str, seed: int) -> None:
    DecodedFrames(shared=SharedFrames(Path(folder), 8 * MB)).get(key, lambda: _frame(seed))


def test_a_frame_decoded_by_one_process_is_read_by_another_without_decoding(
    tmp_path: Path,
) -> None:
    """Process A decodes and shares; this process then gets the same pixels, read-only, and
    never calls its own decoder."""
    child = multiprocessing.get_context("spawn").Process(
        target=_put_in_another_process, args=(str(tmp_path), "frame-a:497", 1)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    pixels = DecodedFrames(shared=SharedFrames(tmp_path, 8 * MB)).get("frame-a:497", _never)
    assert np.array_equal(pixels, _frame(1))
    assert not pixels.flags.writeable  # the other processes' copy: nobody may change it
    # Another key is not found, and is decoded.
    decode = Decode(2)
    DecodedFrames(shared=SharedFrames(tmp_path, 8 * MB)).get("frame-a:500", decode)
    assert decode.calls == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: b"not a frame".ljust(64) + data[64:],  # not our header
        lambda data: data.replace(b"100 160 3", b"200 160 3", 1),  # a shape the size denies
    ],
    ids=["truncated", "foreign-header", "wrong-shape"],
)
def test_a_damaged_shared_file_is_decoded_again_and_replaced(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    """A shared file that is not whole or not ours is never read as a frame."""
    shared = SharedFrames(tmp_path, 8 * MB)
    shared.put("k", _frame(3))
    (path,) = tmp_path.iterdir()
    path.write_bytes(damage(path.read_bytes()))
    assert shared.get("k") is None
    decode = Decode(3)
    pixels = DecodedFrames(shared=shared).get("k", decode)
    assert decode.calls == 1 and np.array_equal(pixels, _frame(3))
    again = shared.get("k")
    assert again is not None and np.array_equal(again, _frame(3))


def test_the_folder_keeps_to_its_budget_and_keeps_what_was_used_last(tmp_path: Path) -> None:
    """48 kB frames in a 200 kB folder: the fifth sends the least recently used away, and a
    frame read again counts as recently used."""
    shared = SharedFrames(tmp_path, 200_000)
    for k in range(3):
        shared.put(f"f{k}", _frame(k))
        os.utime(shared._path(f"f{k}"), ns=((k + 1) * 10**9, (k + 1) * 10**9))  # long ago
    assert shared.get("f0") is not None  # read again: now the most recently used
    shared.put("f3", _frame(3))
    shared.put("f4", _frame(4))
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) <= 200_000
    assert [shared.get(f"f{k}") is not None for k in range(5)] == [True, False, False, True, True]


def test_a_folder_that_cannot_be_written_stops_sharing_and_loses_no_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The folder removed under a running worker: frames are decoded as without sharing, with
    one warning that says which folder failed."""
    folder = tmp_path / "gone"
    folder.mkdir()
    decoded = DecodedFrames(shared=SharedFrames(folder, 8 * MB))
    folder.rmdir()
    with caplog.at_level(logging.WARNING):
        for k in range(3):
            assert np.array_equal(decoded.get(f"k{k}", Decode(k)), _frame(k))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(folder) in warnings[0].getMessage()


def test_a_worker_makes_a_folder_for_its_pool_and_clears_those_of_dead_workers(
    tmp_path: Path,
) -> None:
    """A folder left by a killed worker goes; one of a running process stays."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f"{FOLDER_PREFIX}{int(dead.stdout)}"
    stale.mkdir()
    (stale / "frame").write_bytes(b"x")
    alive = tmp_path / f"{FOLDER_PREFIX}1"  # init: always running
    alive.mkdir()
    folder = worker_folder(tmp_path, os.getpid())
    assert folder.is_dir() and not any(folder.iterdir())
    assert not stale.exists() and alive.exists()


def test_share_decoded_frames_only_for_a_pool_of_two_or_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's hook: a folder for a pool of two, named to the pool processes through the
    environment, removed by the worker's own exit and not by a forked child's."""
    monkeypatch.setattr(tile_tasks, "SHARED_FRAMES_ROOT", tmp_path)
    monkeypatch.delenv(tile_tasks.SHARED_FRAMES_ENV, raising=False)
    at_exit: list[tuple[object, ...]] = []  # kept out of this test process's own exit
    monkeypatch.setattr(atexit, "register", lambda *call: at_exit.append(call))
    tile_tasks.share_decoded_frames({"concurrency": 1})
    assert tile_tasks.SHARED_FRAMES_ENV not in os.environ and not any(tmp_path.iterdir())
    tile_tasks.share_decoded_frames({"concurrency": 2})
    folder = Path(os.environ[tile_tasks.SHARED_FRAMES_ENV])
    monkeypatch.delenv(tile_tasks.SHARED_FRAMES_ENV)  # undone by hand: the hook set it
    assert folder.parent == tmp_path and folder.is_dir()
    assert TileSettings(shared_frames_dir=folder).shared_frames_dir == folder
    assert at_exit == [(tile_tasks._remove_if_owner, folder, os.getpid())]
    tile_tasks._remove_if_owner(folder, os.getpid() + 1)  # a forked child leaves it
    assert folder.is_dir()
    tile_tasks._remove_if_owner(folder, os.getpid())
    assert not folder.exists()


def test_tiles_stitched_from_shared_frames_are_the_same_bytes(tmp_path: Path) -> None:
    """One builder decodes and shares a drive's frames; a second, in the same folder, builds
    the same tiles from the shared copies alone (its store fails every read)."""
    projector = FrameProjector(Calibration(width_px=960, height_px=540))
    store = LocalObjectStore(tmp_path / "store")
    frames = []
    for k in range(4):
        ok, jpeg = cv2.imencode(".jpg", cv2.GaussianBlur(_frame(k, 540).repeat(6, 1), (0, 0), 2))
        assert ok
        data = jpeg.tobytes()
        key = f"frames/{k}.jpg"
        store.put_bytes(key, data)
        pose = FramePose(LON, LAT + k * 4e-5, 0.0, 1000.0 + k)
        frames.append(BlockFrame(hashlib.sha256(data).hexdigest(), pose, key, projector))
    wanted = {tile for frame in frames for tile in projector.tiles(frame.pose)}
    folder = tmp_path / "shared"
    folder.mkdir()
    first = list(
        stitch_tiles(
            store, frames, wanted, decoded=DecodedFrames(shared=SharedFrames(folder, 64 * MB))
        )
    )

    class Unreachable(LocalObjectStore):
        def get_bytes(self, key: str) -> bytes:
            raise AssertionError(f"{key} read from the store, not from the shared folder")

    second = list(
        stitch_tiles(
            Unreachable(tmp_path / "store"),
            frames,
            wanted,
            decoded=DecodedFrames(shared=SharedFrames(folder, 64 * MB)),
        )
    )
    assert len(first) > 4
    assert [(t.tile, t.frame_ids) for t in first] == [(t.tile, t.frame_ids) for t in second]
    assert all(np.array_equal(a.rgba, b.rgba) for a, b in zip(first, second, strict=True))
