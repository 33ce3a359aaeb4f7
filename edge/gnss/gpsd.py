"""Live fixes from gpsd: its JSON protocol (`?WATCH={"enable":true,"json":true}`) turned into `Fix`es.

gpsd reports one receiver epoch as a TPV (time, position, velocity; several when the receiver
dribbles its sentences), a SKY (HDOP, satellites used) and, where the receiver computes it, a GST
(standard deviations of the position in metres). They arrive in no fixed order, so an epoch is
held until the next one starts (or the stream stops) and then merged into one fix.

Quality: `mode` is the fix dimension; HDOP and satellites come from the SKY of the same epoch (or
the latest one); the accuracy is the GST's horizontal standard deviation. gpsd's own `eph` is not
used as accuracy: its confidence is unspecified ("guessed 95 %"), and for an NMEA receiver gpsd
derives it from HDOP with a fixed range error, which would count HDOP twice at an unknown scale.
Interference: u-blox receivers report a CW jamming indicator (UBX-MON-HW/MON-RF `jamInd`, 0 none to
255 strong) that gpsd passes on as the TPV's `jam`; a fix at or above the configured limit is
marked `interference` and so unusable. gpsd's JSON carries no spoofing state (UBX-NAV-STATUS
`spoofDetState` stays inside gpsd), so spoofing is caught only where it shows as jamming.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge.gnss.fix import BadRecord, Fix
from edge.gnss.log import out_of_order

SOURCE = "gpsd"
WATCH = b'?WATCH={"enable":true,"json":true}\n'
DEFAULT_JAM_LIMIT = 100  # jamInd on a 0-255 scale; u-blox documents no threshold
SKY_MAX_AGE_S = 2.0  # a SKY this much older than the TPV no longer describes its epoch

Report = Fix | BadRecord


@dataclass
class _Epoch:
    """The TPV fields of one receiver time, merged as they arrive."""

    time: datetime
    tpv: dict[str, Any] = field(default_factory=dict)


@dataclass
class GpsdParser:
    """Turns gpsd's JSON lines into fixes and bad records, in the order the receiver sent them."""

    jam_limit: int = DEFAULT_JAM_LIMIT
    _epoch: _Epoch | None = None
    _sky: _Recent = field(default_factory=lambda: _Recent())
    _gst: _Recent = field(default_factory=lambda: _Recent())
    _last: Fix | None = None
    lines: int = 0

    def feed(self, line: bytes | str) -> list[Report]:
        """Take one line from gpsd; what it completes (usually nothing, or the previous epoch)."""
        self.lines += 1
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return [self._bad("not gpsd JSON")]
        if not isinstance(message, dict):
            return [self._bad("not a gpsd JSON object")]
        kind = message.get("class")
        if kind == "TPV":
            return self._tpv(message)
        if kind == "SKY":
            self._sky.add(message)
        elif kind == "GST":
            self._gst.add(message)
        elif kind == "ERROR":
            return [self._bad(f"gpsd error: {message.get('message', '')}")]
        return []

    def flush(self) -> list[Report]:
        """Finish the epoch being read (the stream stopped or paused)."""
        epoch, self._epoch = self._epoch, None
        return [] if epoch is None else [self._finish(epoch)]

    def _tpv(self, tpv: dict[str, Any]) -> list[Report]:
        mode = tpv.get("mode")
        if not isinstance(mode, int) or mode < 2:
            return [self._bad(f"receiver reported no fix (TPV mode {mode})")]
        try:
            when = _time(tpv.get("time"))
        except ValueError as exc:
            return [self._bad(str(exc))]
        done: list[Report] = []
        if self._epoch is not None and self._epoch.time != when:
            done = self.flush()
        if self._epoch is None:
            self._epoch = _Epoch(when)
        self._epoch.tpv.update(tpv)  # a receiver that dribbles gives one epoch in several TPVs
        return done

    def _finish(self, epoch: _Epoch) -> Report:
        try:
            fix = self._fix(epoch)
        except ValueError as exc:
            return self._bad(str(exc), epoch.time)
        if self._last is not None and fix.time <= self._last.time:
            return self._bad(out_of_order(self._last, fix), epoch.time)
        self._last = fix
        return fix

    def _fix(self, epoch: _Epoch) -> Fix:
        tpv = epoch.tpv
        lat, lon = _number(tpv, "lat"), _number(tpv, "lon")
        if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
            msg = f"TPV position {tpv.get('lat')!r}, {tpv.get('lon')!r} is missing or out of range"
            raise ValueError(msg)
        sky, gst = self._sky.at(epoch.time), self._gst.at(epoch.time)
        jam = _number(tpv, "jam")
        return Fix(
            time=epoch.time,
            lon=lon,
            lat=lat,
            altitude_m=_first(tpv, "altHAE", "alt"),
            speed_mps=_number(tpv, "speed"),
            course_deg=_number(tpv, "track"),
            hdop=_number(sky, "hdop"),
            satellites=_satellites(sky),
            fix_mode=int(tpv["mode"]),
            accuracy_m=_horizontal_sd(gst),
            interference=jam is not None and jam >= self.jam_limit,
        )

    def _bad(self, reason: str, when: datetime | None = None) -> BadRecord:
        where = f"line {self.lines}" + (f" ({when.isoformat()})" if when else "")
        return BadRecord(SOURCE, where, reason)


def _time(value: object) -> datetime:
    """gpsd's ISO 8601 UTC time ("2026-06-01T10:56:03.000Z")."""
    if not isinstance(value, str):
        msg = "TPV without a time"
        raise ValueError(msg)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        msg = f"TPV time {value!r} is not ISO 8601"
        raise ValueError(msg) from None
    if when.tzinfo is None:
        msg = f"TPV time {value!r} has no timezone"
        raise ValueError(msg)
    try:
        return when.astimezone(UTC)  # fixes are on the UTC clock, whatever offset was written
    except OverflowError:
        msg = f"TPV time {value!r} is out of range"
        raise ValueError(msg) from None


def _number(message: dict[str, Any], name: str) -> float | None:
    """A finite numeric field, or None (gpsd omits what it does not know)."""
    value = message.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _first(message: dict[str, Any], *names: str) -> float | None:
    return next((v for n in names if (v := _number(message, n)) is not None), None)


@dataclass
class _Recent:
    """The last few SKY or GST reports by time: the epoch's own if it came, else the newest close
    enough. gpsd leaves the time out when the receiver gave none; such a report stands for now."""

    by_time: dict[datetime | None, dict[str, Any]] = field(default_factory=dict)
    keep: int = 4

    def add(self, message: dict[str, Any]) -> None:
        try:
            stamped: datetime | None = _time(message.get("time"))
        except ValueError:
            stamped = None
        self.by_time.pop(stamped, None)
        self.by_time[stamped] = message
        while len(self.by_time) > self.keep:
            del self.by_time[next(iter(self.by_time))]

    def at(self, when: datetime) -> dict[str, Any]:
        if when in self.by_time:
            return self.by_time[when]
        for stamped, message in reversed(self.by_time.items()):
            if stamped is None or abs((stamped - when).total_seconds()) <= SKY_MAX_AGE_S:
                return message
        return {}


def _satellites(sky: dict[str, Any]) -> int | None:
    used = _number(sky, "uSat")
    if used is not None:
        return int(used)
    listed = sky.get("satellites")
    if isinstance(listed, list) and listed:
        return sum(1 for s in listed if isinstance(s, dict) and s.get("used") is True)
    return None


def _horizontal_sd(gst: dict[str, Any]) -> float | None:
    """The horizontal standard deviation (metres) from a GST's latitude and longitude ones."""
    lat, lon = _number(gst, "lat"), _number(gst, "lon")
    return None if lat is None or lon is None else math.hypot(lat, lon)
