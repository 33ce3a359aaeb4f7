"""Poses while fixes are still arriving: an instant's pose is given once no later fix can change it.

A pose between fixes k-1 and k depends on those two fixes and, where the receiver gave no speed
or course, on their neighbours (speed and heading are then derived from positions). So an instant
is ready when the fix after it is known and, if that fix lacks speed or course, one more. Poses
come from a `Track` over the few fixes around the instants, in the local metres of the trip's
first fix: they equal the poses of the whole trip's track wherever the receiver reports speed and
course (NMEA RMC, gpsd); from positions alone they agree to rounding.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from edge.gnss.fix import Fix, FixQuality
from edge.track import Pose, Track

NO_FIX = "no GNSS fix covers this instant"


class LiveTrack:
    """The fixes of one trip so far, in time order."""

    def __init__(self, quality: FixQuality | None = None) -> None:
        self.quality = quality
        self.fixes: list[Fix] = []
        self._times: list[float] = []
        self._whole: Track | None = None

    def add(self, fixes: list[Fix]) -> None:
        """Append fixes that come after the last one (feeds hand them over in order)."""
        for fix in fixes:
            t_s = fix.time.timestamp()
            if not self._times or t_s > self._times[-1]:
                self.fixes.append(fix)
                self._times.append(t_s)
                self._whole = None

    @property
    def last_fix_s(self) -> float | None:
        return self._times[-1] if self._times else None

    def ready(self, t_s: float) -> bool:
        """Whether the pose at `t_s` is final while more fixes may still come."""
        after = bisect_right(self._times, t_s)
        if after >= len(self.fixes) or len(self.fixes) < 2:  # a track needs two fixes
            return False
        fix = self.fixes[after]
        return (fix.speed_mps is not None and fix.course_deg is not None) or after + 1 < len(
            self.fixes
        )

    def poses(self, times_s: list[float], *, complete: bool) -> list[Pose]:
        """The poses at `times_s` (ascending). `complete`: no more fixes will come, so the
        track's end is its end (instants after it carry "no GNSS fix" as their problem)."""
        if len(self.fixes) < 2:
            return [Pose(t, 0.0, 0.0, None, 0.0, 0.0, None, NO_FIX) for t in times_s]
        if complete:
            if self._whole is None:
                self._whole = Track(self.fixes, self.quality)
            return self._whole.poses(np.array(times_s))
        low = max(0, bisect_right(self._times, times_s[0]) - 2)
        high = min(len(self.fixes), bisect_right(self._times, times_s[-1]) + 2)
        first = self.fixes[0]
        window = Track(self.fixes[low:high], self.quality, origin=(first.lon, first.lat))
        return window.poses(np.array(times_s))
