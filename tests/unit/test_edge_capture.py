"""Frame sources: a video file timed as `edge process` times it, a camera through OpenCV stamped by
the system clock, and a folder of images timed by EXIF or by order; bad frames as values."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL.ExifTags import IFD, Base

from edge.capture.camera import CameraSource
from edge.capture.images import ImageFolderSource
from edge.capture.source import CaptureError, Frame, Unreadable
from edge.capture.video import VideoFileSource

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
FPS = 10.0
FRAMES = 12


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """Twelve 64x48 frames at 10 fps, frame i filled with grey level 20 * i."""
    path = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (64, 48))
    for i in range(FRAMES):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def frames_of(items: list[Frame | Unreadable]) -> list[Frame]:
    return [f for f in items if isinstance(f, Frame)]


def test_video_frames_are_timed_from_the_start_at_the_frame_rate(video: Path) -> None:
    """Frame i is at start + i / fps (the same float and datetime `edge process` computes), in
    order, and the sequence is named by the video and its start."""
    with VideoFileSource(video, START) as source:
        frames = frames_of(list(source.frames()))
        assert source.sequence_id(frames[3]) == "drive-20260601T060000Z"
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.t_s for f in frames] == [START.timestamp() + i / FPS for i in range(FRAMES)]
    assert frames[5].when == START + timedelta(seconds=0.5)
    grey = [float(f.image.mean()) for f in frames]
    assert grey == sorted(grey) and frames[0].image.shape == (48, 64, 3)


def test_a_video_played_in_real_time_takes_as_long_as_it_lasts(video: Path) -> None:
    """With `realtime`, twelve frames at 10 fps take at least 1.1 s, like a camera."""
    began = time.monotonic()
    with VideoFileSource(video, START, realtime=True) as source:
        assert len(frames_of(list(source.frames()))) == FRAMES
    assert time.monotonic() - began >= (FRAMES - 1) / FPS


def test_a_camera_stamps_frames_with_the_clock_and_says_when_it_stops(video: Path) -> None:
    """OpenCV's capture (a file standing in for /dev/video0) gives frames stamped with the system
    clock in increasing order; when frames stop coming the source raises a clear error."""
    before = time.time()
    source = CameraSource(str(video), clock_offset_s=0.25)
    frames: list[Frame] = []
    with pytest.raises(CaptureError, match="stopped giving frames"):
        for item in source.frames():
            if isinstance(item, Frame):
                frames.append(item)
    source.close()
    times = [f.t_s for f in frames]
    assert len(frames) == FRAMES and times == sorted(set(times))
    assert before + 0.25 <= times[0] <= time.time() + 0.25
    assert frames[0].when == datetime.fromtimestamp(times[0], UTC)


def test_a_missing_camera_is_a_clear_error(tmp_path: Path) -> None:
    """A device that does not exist cannot be opened, and the error says what to check."""
    with pytest.raises(CaptureError, match="cannot open camera"):
        CameraSource(str(tmp_path / "video9"))


def write_image(path: Path, grey: int, exif_time: str | None = None, **extra: str) -> None:
    """A small JPEG, with DateTimeOriginal (and any other EXIF tags) when given."""
    exif = Image.Exif()
    if exif_time:
        exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = exif_time
    for name, value in extra.items():
        exif.get_ifd(IFD.Exif)[getattr(Base, name)] = value
    Image.fromarray(np.full((32, 48, 3), grey, np.uint8)).save(path, exif=exif)


def test_images_are_timed_by_their_exif_in_name_order(tmp_path: Path) -> None:
    """DateTimeOriginal with sub-seconds and offset gives the UTC instant; an image without a
    time, one out of order and a broken file are returned as unreadable with the reason."""
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "a.jpg", 10, "2026:06:01 08:00:00", OffsetTimeOriginal="+02:00")
    write_image(
        folder / "b.jpg",
        20,
        "2026:06:01 08:00:00",
        OffsetTimeOriginal="+02:00",
        SubsecTimeOriginal="5",
    )
    write_image(folder / "c.jpg", 30)
    write_image(folder / "d.jpg", 40, "2026:06:01 05:59:59")
    (folder / "e.jpg").write_bytes(b"not a jpeg")
    write_image(folder / "f.jpg", 50, "2026:06:01 06:00:01")
    items = list(ImageFolderSource(folder).frames())
    frames = frames_of(items)
    assert [f.when for f in frames] == [
        START,
        START + timedelta(seconds=0.5),
        START + timedelta(seconds=1),
    ]
    reasons = [i.reason for i in items if isinstance(i, Unreadable)]
    assert reasons[0] == "c.jpg: no EXIF DateTimeOriginal: give a frame rate and start time instead"
    assert reasons[1].startswith("d.jpg: taken 2026-06-01T05:59:59+00:00, not after")
    assert reasons[2].startswith("e.jpg: cannot read its EXIF")


def test_images_without_exif_are_timed_by_order_at_a_given_rate(tmp_path: Path) -> None:
    """With a rate, image i is at start + i / rate whatever its EXIF says."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"{i:03d}.png", 60 * i)
    frames = frames_of(list(ImageFolderSource(folder, rate_hz=2.0, start=START).frames()))
    assert [f.t_s - START.timestamp() for f in frames] == [0.0, 0.5, 1.0]
    with pytest.raises(CaptureError, match=r"holds no \.jpg"):
        ImageFolderSource(tmp_path)
