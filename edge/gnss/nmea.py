"""GNSS fixes from an NMEA 0183 log: RMC, GGA and GSA sentences of one epoch merged into one fix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path

import pynmea2
from pynmea2 import nmea_utils

from edge.gnss.fix import BadRecord, Fix
from edge.gnss.log import GnssLog, check_sequence, read_bytes

TALKERS = frozenset({"GP", "GN", "GL"})
ASCII_SPACE = " \t\r\n\v\f"
MPS_PER_KNOT = 1852.0 / 3600.0
GSA_MODES = frozenset({"1", "2", "3"})
_CLOCK = re.compile(r"(\d\d)(\d\d)(\d\d(?:\.\d+)?)")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")


@dataclass
class _Epoch:
    """The RMC and GGA sentences read so far for one UTC time of day, by type, and their lines."""

    clock: time
    sentences: dict[str, pynmea2.TalkerSentence] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    gsa_mode: str | None = None
    date: date | None = None  # of its RMC, or else of the latest RMC before it


@dataclass
class NmeaReader:
    """Collects fixes and bad records as lines arrive; an epoch ends when a new time of day starts."""

    source: str
    date: date | None = None  # of the latest RMC: GGA carries only the time of day
    epoch: _Epoch | None = None
    fixes: list[Fix] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)

    def feed(self, number: int, line: str) -> None:
        """Take one line of the log."""
        sentence = _parse(line)
        if isinstance(sentence, str):
            self.reject(number, sentence)
        elif isinstance(sentence, pynmea2.GSA):
            self.gsa(number, sentence)
        elif isinstance(sentence, pynmea2.RMC | pynmea2.GGA):
            self.timed(number, sentence)

    def gsa(self, number: int, sentence: pynmea2.GSA) -> None:
        """Note the fix mode of a GSA on the epoch being read."""
        mode = _raw(sentence, "mode_fix_type")
        if mode not in GSA_MODES:
            self.reject(number, f"GSA fix mode {mode!r} is not 1, 2 or 3")
        elif self.epoch is not None:
            self.epoch.gsa_mode = mode

    def timed(self, number: int, sentence: pynmea2.RMC | pynmea2.GGA) -> None:
        """Add an RMC or GGA to its epoch, ending the previous epoch if the time differs."""
        try:
            at = _clock(_raw(sentence, "timestamp"))
            if isinstance(sentence, pynmea2.RMC):
                self.date = _day(_raw(sentence, "datestamp"))
        except ValueError as error:
            self.reject(number, f"{sentence.sentence_type}: {error}")
            return
        kind = str(sentence.sentence_type)
        if self.epoch is None or self.epoch.clock != at or kind in self.epoch.sentences:
            self.end_epoch()
            self.epoch = _Epoch(at)
        self.epoch.sentences[kind], self.epoch.lines[kind] = sentence, number
        self.epoch.date = self.date

    def end_epoch(self) -> None:
        """Turn the epoch being read into a fix or a bad record."""
        if self.epoch is None:
            return
        fix = _epoch_fix(self.epoch)
        if isinstance(fix, Fix):
            self.fixes.append(fix)
            self.locations.append(f"line {min(self.epoch.lines.values())}")
        else:
            self.reject(*fix)
        self.epoch = None

    def reject(self, number: int, reason: str) -> None:
        """Record a line that gives no fix."""
        self.bad.append(BadRecord(self.source, f"line {number}", reason))


def read_nmea(path: Path) -> GnssLog:
    """Read an NMEA log; lines and epochs that cannot be used are returned as bad records.

    A log without a single valid fix is not an error by itself; a missing file raises GnssFileError.
    """
    # Replaced, not fatal: a line of stray bytes from a flaky serial link must not lose the file.
    text = read_bytes(path, "NMEA").decode("utf-8", errors="replace")
    reader = NmeaReader(str(path))
    for number, line in enumerate(text.split("\n"), start=1):
        # Only ASCII white space makes a line blank: str.strip() would also drop a line of
        # control characters (\x1c-\x1f), and such a line is a bad record, not nothing.
        if stripped := line.strip(ASCII_SPACE):
            reader.feed(number, stripped)
    reader.end_epoch()
    ordered = check_sequence(reader.fixes, reader.source, locations=reader.locations)
    bad = sorted(reader.bad + ordered.bad, key=lambda b: int(b.location.split()[-1]))
    return GnssLog(ordered.fixes, bad)


def _parse(line: str) -> pynmea2.NMEASentence | str:
    """The checked sentence, or why the line is not one."""
    if not line.isascii():
        return "not an NMEA sentence: undecodable or non-ASCII bytes"
    try:
        sentence = pynmea2.parse(line, check=True)
    except pynmea2.ParseError as error:  # also bad checksums and unknown sentence types
        message = error.args[0][0] if isinstance(error.args[0], tuple) else error
        return f"not a valid NMEA sentence: {message}"
    used = isinstance(sentence, pynmea2.RMC | pynmea2.GGA | pynmea2.GSA)
    if used and sentence.talker not in TALKERS:
        return f"talker {sentence.talker} is not used (GP, GN or GL)"
    return sentence


def _epoch_fix(epoch: _Epoch) -> Fix | tuple[int, str]:
    """The merged fix of one epoch, or the line and reason it gives none."""
    rmc, gga = epoch.sentences.get("RMC"), epoch.sentences.get("GGA")
    status = _raw(rmc, "status") if rmc is not None else "A"
    quality = _raw(gga, "gps_qual") if gga is not None else "1"
    first = min(epoch.lines.values())
    checks = (
        (epoch.lines.get("RMC"), status != "A", f"RMC status {status or 'empty'}"),
        (epoch.lines.get("GGA"), quality in {"", "0"}, f"GGA quality {quality or 'empty'}"),
        (first, epoch.gsa_mode == "1", "GSA mode 1"),
    )
    for line, failed, why in checks:
        if failed:
            return line or first, f"receiver reported no fix ({why})"
    if epoch.date is None:
        return first, "time of day without a date: no RMC sentence before it"
    try:
        return _fix(rmc, gga, datetime.combine(epoch.date, epoch.clock, tzinfo=UTC), epoch.gsa_mode)
    except ValueError as error:
        return first, str(error)


def _fix(
    rmc: pynmea2.RMC | None, gga: pynmea2.GGA | None, at: datetime, gsa_mode: str | None
) -> Fix:
    """Position from GGA or RMC, quality from GGA, speed and course from RMC."""
    placed = gga if gga is not None and _raw(gga, "lat") else rmc
    if placed is None or not _raw(placed, "lat"):
        msg = "no position in RMC or GGA"
        raise ValueError(msg)
    knots = _number(rmc, "spd_over_grnd")
    altitude, count = _number(gga, "altitude"), _number(gga, "num_sats")
    return Fix(
        time=at,
        lon=_degrees(_raw(placed, "lon"), _raw(placed, "lon_dir"), "EW", 180.0),
        lat=_degrees(_raw(placed, "lat"), _raw(placed, "lat_dir"), "NS", 90.0),
        altitude_m=altitude,
        speed_mps=None if knots is None else knots * MPS_PER_KNOT,
        course_deg=_number(rmc, "true_course"),
        hdop=_number(gga, "horizontal_dil"),
        satellites=None if count is None else int(count),
        fix_mode=int(gsa_mode) if gsa_mode else 3 if altitude is not None else None,
    )


def _raw(sentence: pynmea2.TalkerSentence, name: str) -> str:
    """A field as written, stripped; empty when the sentence is too short to have it."""
    index = type(sentence).name_to_idx[name]
    return str(sentence.data[index]).strip() if index < len(sentence.data) else ""


def _number(sentence: pynmea2.TalkerSentence | None, name: str) -> float | None:
    """A numeric field, None when empty or absent; ValueError when it is not a number."""
    if sentence is None or not (text := _raw(sentence, name)):
        return None
    if not _NUMBER.fullmatch(text):
        label = type(sentence).fields[type(sentence).name_to_idx[name]][0]
        msg = f"{sentence.sentence_type} {label} {text!r} is not a number"
        raise ValueError(msg)
    return float(text)


def _clock(text: str) -> time:
    """hhmmss[.ss] as a time of day (pynmea2's own parser turns .57 s into 0.569999 s)."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        msg = f"UTC time {text!r} is not hhmmss.ss"
        raise ValueError(msg)
    seconds, micros = divmod(round(float(match[3]) * 1_000_000), 1_000_000)
    return time(int(match[1]), int(match[2]), seconds, micros)  # ValueError past 23:59:59


def _day(text: str) -> date:
    """ddmmyy as a date."""
    try:
        return datetime.strptime(text, "%d%m%y").date()
    except ValueError:
        msg = f"date {text!r} is not ddmmyy"
        raise ValueError(msg) from None


def _degrees(text: str, hemisphere: str, signs: str, limit: float) -> float:
    """Signed degrees from d..dmm.mmm and a hemisphere letter (`signs`: positive then negative)."""
    value = float(nmea_utils.dm_to_sd(text))  # ValueError unless d..dmm.mmm
    if not (text and hemisphere and hemisphere in signs and value <= limit):
        msg = f"position {text!r} {hemisphere!r} is missing, out of range or not {signs[0]}/{signs[1]}"
        raise ValueError(msg)
    return value if hemisphere == signs[0] else -value
