"""One GNSS fix as every source reports it, and what makes a fix good enough to map with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Fix:
    """A position at a UTC instant, with what the receiver said about its quality.

    Fields a source does not report are None; `fix_mode` is 2 or 3 (dimensions) where known;
    `interference` is True when the receiver reported jamming or spoofing.
    """

    time: datetime
    lon: float
    lat: float
    altitude_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    fix_mode: int | None = None
    accuracy_m: float | None = None
    interference: bool = False


@dataclass(frozen=True)
class FixQuality:
    """Thresholds for a fix to be used (defaults: 3D, >= 4 satellites, HDOP <= 4, <= 10 m)."""

    min_fix_mode: int = 3
    min_satellites: int = 4
    max_hdop: float = 4.0
    max_accuracy_m: float = 10.0

    def problem(self, fix: Fix) -> str | None:
        """Why `fix` must not be used, or None. Unknown values do not count against a fix."""
        checks = (
            (fix.interference, "the receiver reported jamming or spoofing"),
            (fix.fix_mode is not None and fix.fix_mode < self.min_fix_mode, f"{fix.fix_mode}D fix"),
            (
                fix.satellites is not None and fix.satellites < self.min_satellites,
                f"{fix.satellites} satellites",
            ),
            (fix.hdop is not None and fix.hdop > self.max_hdop, f"HDOP {fix.hdop}"),
            (
                fix.accuracy_m is not None and fix.accuracy_m > self.max_accuracy_m,
                f"accuracy {fix.accuracy_m} m",
            ),
        )
        return next((why for failed, why in checks if failed), None)


@dataclass(frozen=True)
class BadRecord:
    """A line or point of a GNSS log that could not be used, and why (kept, never dropped silently)."""

    source: str
    location: str
    reason: str
