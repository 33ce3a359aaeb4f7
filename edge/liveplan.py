"""Keyframe candidates frame by frame, as `plan_keyframes` and `edge process` choose them.

The same rules in the same arithmetic (distance from Doppler speed while moving, one
candidate per `spacing_m`, a fallback window of `fallback_m` for frames that fail the image
checks), with one difference live capture forces: the end of the trip is not known yet, so the
last `trim_m` are not left out here but when the trip ends (the raw queue holds candidates until
they are that far behind).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from edge.keyframes import KeyframeRules, PrivacyZones, moving, skip_reason
from edge.track import Pose


@dataclass(frozen=True)
class OpenCandidate:
    """A keyframe to take: the first frame from `frame_index` on, up to `limit_m` along the trip,
    that passes the image checks."""

    position: int  # its index in the sequence
    frame_index: int
    travelled_m: float
    limit_m: float


@dataclass
class LivePlanner:
    """Walks the frames of one trip in order."""

    rules: KeyframeRules
    zones: PrivacyZones | None = None
    travelled_m: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    _last: Pose | None = None
    _next_mark: float | None = None
    _position: int = 0
    _open: OpenCandidate | None = None

    def step(self, index: int, pose: Pose) -> OpenCandidate | None:
        """Move on to frame `index`; the candidate whose image it should be checked for, if any."""
        self._advance(pose)
        mark = self.rules.trim_m if self._next_mark is None else self._next_mark
        reason = skip_reason(pose, self.travelled_m, math.inf, mark, self.rules, self.zones)
        if reason:
            self.skipped[reason] += 1
        else:
            limit = self.travelled_m + self.rules.fallback_m
            self._open = OpenCandidate(self._position, index, self.travelled_m, limit)
            self._position += 1
            self._next_mark = self.travelled_m + self.rules.spacing_m
        if self._open is not None and self.travelled_m > self._open.limit_m:
            self._open = None
        return self._open

    def taken(self) -> None:
        """The open candidate has its keyframe."""
        self._open = None

    def _advance(self, pose: Pose) -> None:
        """Distance as `keyframes.travelled` integrates it: the trapezoid of speeds between two
        poses with usable GNSS, unless standing (the same operations in the same order, so the
        same floats)."""
        last, self._last = self._last, pose
        if last is None:
            return
        counted = (
            last.problem is None
            and pose.problem is None
            and moving(last, pose, self.rules.stationary_below_mps)
        )
        step = (pose.t_s - last.t_s) * (pose.speed_mps + last.speed_mps) / 2 * counted
        self.travelled_m += step
