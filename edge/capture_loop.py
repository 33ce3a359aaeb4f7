"""Live capture: frames and fixes in, keyframe candidates into the raw queue; never waits for the
detectors.

Each frame waits in memory until its pose is final (the fix after it has arrived), then goes
through the same keyframe rules as `edge process`. A candidate's frame is checked for sharpness
and brightness, sealed (PNG, AES-GCM) and queued in the spool, where the privacy stage picks it
up. A camera cannot wait, so when GNSS lags by more than `max_pending_frames` the oldest frames
are dropped; a recording can, so it is read no faster than GNSS arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from edge.capture.source import Frame, FrameSource, Unreadable
from edge.gnss.feed import FixFeed
from edge.keyframes import KeyframeRules, PrivacyZones, image_problem
from edge.liveplan import LivePlanner, OpenCandidate
from edge.livetrack import LiveTrack
from edge.quota import SpaceKeeper
from edge.rawcrypt import RawCipher
from edge.rawqueue import NewCandidate, RawSpool, candidate_label
from edge.spool import SpoolError
from edge.track import Pose
from ingest.protocol import CameraCalibration

log = logging.getLogger(__name__)
WAIT_FOR_GNSS_S = 0.2
PROGRESS_EVERY_S = 1.0  # how often the trip's distance is written (releases held candidates)


@dataclass(frozen=True)
class CaptureOptions:
    """Keyframe rules and how long to wait for GNSS."""

    rules: KeyframeRules = field(default_factory=KeyframeRules)
    zones: PrivacyZones | None = None
    horizon: float | None = None  # row of the horizon, for the detectors' detail band
    camera: CameraCalibration | None = None  # sent with the batches, for map tiles
    max_pending_frames: int = 90
    gnss_stall_s: float = 5.0


@dataclass
class CaptureReport:
    """What capture saw and queued, and why the other frames were passed over."""

    frames: int = 0
    sequence_id: str | None = None
    candidates_queued: int = 0
    travelled_m: float = 0.0
    trimmed_at_trip_end: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unreadable: Counter[str] = field(default_factory=Counter)
    gnss_bad_records: Counter[str] = field(default_factory=Counter)
    source_ended: bool = False


class Capture:
    """One source's frames through the keyframe rules into the raw queue (on its own thread)."""

    def __init__(
        self,
        source: FrameSource,
        feed: FixFeed,
        spool: RawSpool,
        cipher: RawCipher,
        keeper: SpaceKeeper,
        options: CaptureOptions,
        stop: threading.Event,
    ) -> None:
        self.source, self.feed, self.spool = source, feed, spool
        self.cipher, self.keeper, self.options = cipher, keeper, options
        self.stop = stop
        self.report = CaptureReport()
        self.track = LiveTrack()
        self.planner = LivePlanner(options.rules, options.zones)
        self._pending: deque[Frame] = deque()
        self._last_fix_at = time.monotonic()
        self._progress_at = 0.0

    def run(self) -> CaptureReport:
        """Capture until the source ends or `stop` is set; the report."""
        frames = self.source.frames()
        while not self.stop.is_set():
            reading = not self.report.source_ended and self._may_read()
            if not reading and not self._pending:
                break
            # The last frames still wait for their fixes after the source has ended.
            self._take_fixes(0.0 if reading else WAIT_FOR_GNSS_S)
            if reading:
                self._read(frames)
            self._resolve(complete=self._gnss_complete())
        # Stopped: whatever still waits is placed with the fixes known now.
        self._resolve(complete=True)
        self._finish()
        self.report.skipped.update(self.planner.skipped)
        self.report.gnss_bad_records = self.feed.bad
        return self.report

    def _may_read(self) -> bool:
        return self.source.live or len(self._pending) < self.options.max_pending_frames

    def _read(self, frames: Iterator[Frame | Unreadable]) -> None:
        item = next(frames, None)
        if item is None:
            self.report.source_ended = True
        elif isinstance(item, Unreadable):
            self.report.unreadable[item.reason] += 1
        else:
            self._pending.append(item)
            if len(self._pending) > self.options.max_pending_frames:
                self._pending.popleft()
                self.report.skipped["GNSS: fix came too late"] += 1

    def _take_fixes(self, timeout_s: float) -> None:
        fixes = self.feed.take(timeout_s)
        if fixes:
            self.track.add(fixes)
            self._last_fix_at = time.monotonic()

    def _gnss_complete(self) -> bool:
        """No fix will come for the frames waiting: the log is done or the receiver is silent."""
        if self.feed.ended:
            return True
        silent = time.monotonic() - self._last_fix_at > self.options.gnss_stall_s
        return silent and (self.source.live or self.report.source_ended or not self._may_read())

    def _resolve(self, *, complete: bool) -> None:
        ready: list[Frame] = []
        while self._pending and (complete or self.track.ready(self._pending[0].t_s)):
            ready.append(self._pending.popleft())
        if ready:
            poses = self.track.poses([f.t_s for f in ready], complete=complete)
            for frame, pose in zip(ready, poses, strict=True):
                self._plan(frame, pose)

    def _plan(self, frame: Frame, pose: Pose) -> None:
        sequence_id = self.report.sequence_id or self._start_trip(frame)
        self.report.frames += 1
        candidate = self.planner.step(frame.index, pose)
        if candidate is not None:
            if self.spool.has_candidate(sequence_id, candidate.position):
                self.planner.taken()  # an earlier run of this recording queued it
            elif problem := image_problem(frame.image, self.options.rules):
                self.planner.skipped[problem] += 1
            else:
                self.planner.taken()
                self._store(sequence_id, candidate, frame, pose)
        if time.monotonic() - self._progress_at >= PROGRESS_EVERY_S:
            self._progress_at = time.monotonic()
            self.spool.advance_trip(sequence_id, self.planner.travelled_m)

    def _start_trip(self, first: Frame) -> str:
        sequence_id = self.source.sequence_id(first)
        self.report.sequence_id = sequence_id
        for other in self.spool.open_trips():
            if other != sequence_id:
                # Left open by a run that died: it ended where it had got to.
                dropped = self.spool.end_trip(other)
                self.spool.record_event(
                    "capture", f"ended trip {other} left open by an earlier run ({dropped} trimmed)"
                )
        self.spool.open_trip(sequence_id, self.options.rules.trim_m, self.options.horizon)
        if self.options.camera is not None:
            self.spool.set_sequence_camera(sequence_id, self.options.camera)
        return sequence_id

    def _store(self, sequence_id: str, candidate: OpenCandidate, frame: Frame, pose: Pose) -> None:
        blob = self.cipher.seal(frame.image, candidate_label(sequence_id, candidate.position))
        refusal = self.keeper.make_room(len(blob))
        if refusal is None:
            # The distance at this frame, a fallback's too (not its mark's): the record's
            # odometry, and what the trip's trimmed end is judged by, as `edge process` does.
            entry = NewCandidate(
                sequence_id,
                candidate.position,
                frame.index,
                self.planner.travelled_m,
                frame.when.isoformat(),
                pose,
            )
            try:
                self.spool.queue(entry, blob)
                self.keeper.resume()
                self.report.candidates_queued += 1
                return
            except SpoolError as exc:
                refusal = str(exc)
        self.report.skipped["not stored: spool full or disk full"] += 1
        self.keeper.pause(refusal)

    def _finish(self) -> None:
        """End the trip if it is over: the source ended, or it was a camera (a restart starts a
        new trip). A recording stopped early stays open: running it again continues it."""
        sequence_id = self.report.sequence_id
        if sequence_id is None:
            return
        self.report.travelled_m = round(self.planner.travelled_m, 1)
        if self.report.source_ended or self.source.live:
            self.report.trimmed_at_trip_end = self.spool.end_trip(
                sequence_id, self.planner.travelled_m
            )
        else:
            self.spool.advance_trip(sequence_id, self.planner.travelled_m)
