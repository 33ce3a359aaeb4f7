"""`roadswarm edge process`: a recorded drive (video + GNSS log) to anonymized, packaged keyframes.

Frames are decoded once, in order; only the planned keyframes (and their fallbacks) are checked,
anonymized and written. Every frame not kept is counted by reason; a keyframe the privacy stage
could not check is counted as unusable and never written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.anonymize import Anonymized, Anonymizer
from edge.errors import EdgeError
from edge.gnss.log import GnssLog
from edge.inorder import InOrder
from edge.keyframes import (
    TRIP_ENDS,
    Candidate,
    KeyframeRules,
    Plan,
    PrivacyZones,
    image_problem,
    plan_keyframes,
)
from edge.package import TRAVELLED_DECIMALS, KeyframeRecord, encode_keyframe
from edge.spool import Spool
from edge.track import Pose, Track
from ingest.protocol import CameraCalibration

U8Image = NDArray[np.uint8]


class RecordingError(EdgeError):
    """The video cannot be read, or it and the GNSS log do not cover the same time."""


@dataclass
class ProcessReport:
    """What came out of one recording, and why the rest did not."""

    video_start: str = ""
    video_offset_s: float | None = None
    frames: int = 0
    keyframes: int = 0
    travelled_m: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    gnss_bad_records: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "skipped": dict(self.skipped)}


@dataclass(frozen=True)
class Recording:
    """A video file and when its first frame was taken on the GNSS clock."""

    video: Path
    start: datetime


def open_video(video: Path) -> tuple[cv2.VideoCapture, float, int]:
    """The opened video, its frame rate and its frame count; RecordingError if it has neither."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    if fps <= 0 or count <= 0:
        capture.release()
        msg = f"cannot read {video} as a video (no frames or frame rate): pass an MP4/MKV the camera wrote"
        raise RecordingError(msg)
    return capture, fps, count


def _frames(
    capture: cv2.VideoCapture, wanted: Callable[[int], bool], last: int, count: int
) -> Iterator[tuple[int, U8Image]]:
    """Decode in order up to frame `last`, yielding the frames `wanted` still wants when their
    turn comes (asked after the frame before was taken); stops early if the file is truncated."""
    for index in range(min(count, last + 1)):
        # Every frame must be decoded (the next depends on it), but only a wanted one is
        # converted to BGR: a keyframe's fallbacks are not, once the keyframe has been taken.
        if not capture.grab():
            return
        if wanted(index):
            ok, frame = capture.retrieve()
            if not ok:
                return
            yield index, np.asarray(frame, np.uint8)


def plan(
    recording: Recording,
    log: GnssLog,
    rules: KeyframeRules,
    zones: PrivacyZones | None,
    fps: float,
    count: int,
) -> tuple[list[Pose], Plan]:
    """Poses of every frame, and the keyframe candidates among them."""
    if len(log.fixes) < 2:
        msg = (
            f"the GNSS log has {len(log.fixes)} usable fixes: the drive cannot be placed on the map"
        )
        raise RecordingError(msg)
    times = recording.start.timestamp() + np.arange(count) / fps
    track = Track(log.fixes)
    if times[-1] < track.t_s[0] or times[0] > track.t_s[-1]:
        msg = (
            f"video ({recording.start.isoformat()}, {count / fps:.0f} s) and GNSS log "
            f"({log.fixes[0].time.isoformat()} to {log.fixes[-1].time.isoformat()}) do not overlap: "
            "give the video's start time with --video-start"
        )
        raise RecordingError(msg)
    poses = track.poses(times)
    return poses, plan_keyframes(poses, rules, zones)


def process_recording(
    recording: Recording,
    log: GnssLog,
    anonymizer: Anonymizer,
    spool: Spool,
    *,
    rules: KeyframeRules,
    zones: PrivacyZones | None = None,
    horizon: float | None = None,
    camera: CameraCalibration | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProcessReport:
    """Select, check, anonymize and package the keyframes of one recording into the spool.

    Running it again on the same recording (after a crash, say) skips what the spool already holds.
    `progress(frames_read, frames_total)` is called as the video is worked through.
    """
    started = time.perf_counter()
    capture, fps, count = open_video(recording.video)
    poses, chosen = plan(recording, log, rules, zones, fps, count)
    candidates = chosen.candidates
    report = ProcessReport(
        video_start=recording.start.isoformat(),
        frames=count,
        travelled_m=round(chosen.travelled_m, 1),
        skipped=chosen.skipped,
        gnss_bad_records=len(log.bad),
    )
    sequence_id = f"{recording.video.stem}-{recording.start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if camera is not None:
        spool.set_sequence_camera(sequence_id, camera)
    todo = [c for c in candidates if not _in_spool(spool, sequence_id, c)]
    report.skipped["already in the spool"] += len(candidates) - len(todo)
    walk = _Walk(
        {i: c for c in todo for i in range(c.frame_index, c.last_index + 1)},
        poses,
        chosen.frame_travelled_m,
        chosen.travelled_m - rules.trim_m,
        rules,
        recording.start,
        fps,
        sequence_id,
    )

    def package(taken: Taken) -> tuple[Taken, Packaged | str]:
        return taken, package_keyframe(taken, anonymizer, horizon=horizon)

    with InOrder(package, anonymizer.frames_at_once) as work:
        for index, frame in _frames(capture, walk.wants, max(walk.owner, default=-1), count):
            if progress is not None:
                progress(index + 1, count)
            taken = walk.take(index, frame, report)
            for outcome in work.put(taken) if taken else []:
                _spool_outcome(report, spool, *outcome)
        for outcome in work.finish():
            _spool_outcome(report, spool, *outcome)
    capture.release()
    lost = [c for c in todo if c.frame_index not in walk.done]
    if lost and walk.last_read < max(walk.owner):
        _count_unread(report, spool, sequence_id, lost)
    if progress is not None:
        progress(count, count)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _in_spool(spool: Spool, sequence_id: str, candidate: Candidate) -> bool:
    frames = range(candidate.frame_index, candidate.last_index + 1)
    return any(spool.has_source(sequence_id, i) for i in frames)


@dataclass
class _Walk:
    """The planned frames of one recording as they are decoded: which to take, which to skip."""

    owner: dict[int, Candidate]  # each wanted frame index -> its candidate
    poses: list[Pose]
    at_m: NDArray[np.float64]  # distance travelled at each frame
    end_m: float  # where the trip's trimmed end begins
    rules: KeyframeRules
    start: datetime
    fps: float
    sequence_id: str
    done: set[int] = field(default_factory=set)  # candidates taken or given up
    last_read: int = -1

    def wants(self, index: int) -> bool:
        """Whether frame `index` may still become a keyframe: a frame of a candidate not yet
        taken or given up."""
        candidate = self.owner.get(index)
        return candidate is not None and candidate.frame_index not in self.done

    def take(self, index: int, frame: U8Image, report: ProcessReport) -> Taken | None:
        """The frame as its candidate's keyframe, or None (the reason counted in `report`)."""
        self.last_read = index
        candidate = self.owner[index]
        if candidate.frame_index in self.done:
            return None
        # A fallback frame may lie in the trip's trimmed end, where live capture drops it too.
        problem = TRIP_ENDS if self.at_m[index] > self.end_m else image_problem(frame, self.rules)
        if problem:
            report.skipped[problem] += 1
            if index == candidate.last_index:
                self.done.add(candidate.frame_index)
            return None
        self.done.add(candidate.frame_index)
        when = self.start + timedelta(seconds=index / self.fps)
        # The record carries the distance at the frame taken, a fallback's too: it is the
        # odometry the server places keyframes along the road with.
        taken_at = replace(candidate, travelled_m=float(self.at_m[index]))
        return Taken(frame, self.poses[index], when, self.sequence_id, taken_at, index)


VIDEO_DAMAGED = "video unreadable from here on (damaged or cut short)"


def _count_unread(
    report: ProcessReport, spool: Spool, sequence_id: str, lost: list[Candidate]
) -> None:
    """Keyframes planned past the point where the video stopped decoding: counted and recorded,
    never silently missing (the rest of the drive is kept)."""
    report.skipped[VIDEO_DAMAGED] += len(lost)
    first = min(c.frame_index for c in lost)
    detail = f"{sequence_id}: the video stopped decoding before frame {first}; {len(lost)} keyframes not taken"
    spool.record_event("video_damaged", detail)


@dataclass(frozen=True)
class Taken:
    """A frame chosen as a keyframe, with where and when it was taken and which candidate it is."""

    image: U8Image
    pose: Pose
    when: datetime
    sequence_id: str
    candidate: Candidate
    source_frame: int


@dataclass(frozen=True)
class Packaged:
    """An anonymized keyframe ready for the spool: its record and JPEG bytes."""

    record: KeyframeRecord
    data: bytes


def package_keyframe(
    taken: Taken, anonymizer: Anonymizer, *, horizon: float | None
) -> Packaged | str:
    """Anonymize and package one keyframe, or say why the privacy stage could not check it (then
    nothing may be written: fail closed). Safe to call from several threads at once."""
    result = anonymizer.anonymize(taken.image, horizon=horizon)
    if not isinstance(result, Anonymized):
        return result.reason
    data, frame_id = encode_keyframe(result.image, taken.pose, taken.when)
    record = _record(
        frame_id,
        taken.pose,
        taken.when,
        taken.sequence_id,
        taken.candidate,
        taken.source_frame,
        anonymizer,
    )
    return Packaged(record, data)


def _spool_outcome(
    report: ProcessReport, spool: Spool, taken: Taken, outcome: Packaged | str
) -> None:
    if isinstance(outcome, str):
        report.skipped[f"unusable: {outcome}"] += 1
        detail = f"{taken.sequence_id} frame {taken.source_frame}: {outcome}"
        spool.record_event("unusable", detail)
    else:
        report.keyframes += spool.add(outcome.record, outcome.data)


def _record(
    frame_id: str,
    pose: Pose,
    when: datetime,
    sequence_id: str,
    candidate: Candidate,
    source_frame: int,
    anonymizer: Anonymizer,
) -> KeyframeRecord:
    return KeyframeRecord(
        frame_id,
        when.isoformat(),
        round(pose.lat, 8),
        round(pose.lon, 8),
        pose.altitude_m,
        round(pose.heading_deg, 2),
        round(pose.speed_mps, 2),
        pose.hdop,
        sequence_id,
        candidate.position,
        round(candidate.travelled_m, TRAVELLED_DECIMALS),
        source_frame,
        anonymizer.model_versions,
    )
