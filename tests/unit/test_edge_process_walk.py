"""`edge process` walking a video: every frame decoded, a frame converted only while its keyframe
candidate still wants one, a dark first frame replaced by the next one in its fallback window."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np

from edge.keyframes import Candidate, KeyframeRules
from edge.process import ProcessReport, _frames, _Walk
from edge.track import Pose

HEIGHT, WIDTH = 48, 64


def _bright() -> np.ndarray:
    """A sharp, well-lit frame: a checkerboard."""
    tile = (np.indices((HEIGHT, WIDTH)).sum(axis=0) // 4 % 2 * 200 + 30).astype(np.uint8)
    return np.repeat(tile[:, :, None], 3, axis=2)


class _Video:
    """A capture of `frames` that counts what it was asked to do, as cv2.VideoCapture would be."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.at = -1
        self.calls: Counter[str] = Counter()

    def grab(self) -> bool:
        self.calls["grab"] += 1
        self.at += 1
        return self.at < len(self.frames)

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.calls["retrieve"] += 1
        return True, self.frames[self.at]


def _walk(candidates: list[Candidate], frames: int) -> _Walk:
    pose = Pose(0.0, 24.9, 60.2, None, 90.0, 10.0, 0.8)
    return _Walk(
        {i: c for c in candidates for i in range(c.frame_index, c.last_index + 1)},
        [pose] * frames,
        np.arange(frames, dtype=np.float64),
        float(frames),
        KeyframeRules(),
        datetime(2026, 12, 2, tzinfo=UTC),
        30.0,
        "trip",
    )


def test_fallback_frames_are_converted_only_until_the_keyframe_is_taken() -> None:
    """Candidate A (frames 1-4) is taken at its first frame; B (frames 6-9) starts with a dark
    frame and is taken at the next one. Frames after a taken one are decoded, not converted."""
    frames = [_bright() for _ in range(12)]
    frames[6] = np.zeros_like(frames[6])
    walk = _walk([Candidate(1, 4, 1.0, 0), Candidate(6, 9, 6.0, 1)], len(frames))
    video = _Video(frames)
    report = ProcessReport(video_start="", frames=len(frames), travelled_m=12.0)
    taken = []
    for index, frame in _frames(video, walk.wants, max(walk.owner), len(frames)):  # type: ignore[arg-type]
        if (keyframe := walk.take(index, frame, report)) is not None:
            taken.append(keyframe.source_frame)
    assert taken == [1, 7]
    assert report.skipped["too dark"] == 1
    # Frames 0-9 decoded; converted: 1 (taken), 6 (dark), 7 (taken).
    assert video.calls == Counter(grab=10, retrieve=3)


def test_a_video_cut_short_stops_the_walk() -> None:
    """The capture runs out at frame 3 though the plan reaches frame 9: the walk ends there."""
    video = _Video([_bright() for _ in range(3)])
    walk = _walk([Candidate(1, 2, 1.0, 0), Candidate(6, 9, 6.0, 1)], 10)
    read = [i for i, _ in _frames(video, walk.wants, max(walk.owner), 10)]  # type: ignore[arg-type]
    assert read == [1, 2]
