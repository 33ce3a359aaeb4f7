"""Tests of the serial NMEA feed: a receiver on a (pseudo-)terminal read without gpsd."""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.gnss.fix import Fix
from edge.gnss.serial_feed import SerialNmeaFeed
from edge.settings import EdgeSettings
from roadswarm.edge_run_cli import Sources, open_feed
from roadswarm.errors import UserInputError
from roadswarm.sim.geo import LocalFrame
from roadswarm.sim.gnss import GnssFix, GnssOptions, simulate_fixes, write_nmea

START = datetime(2026, 5, 17, 12, 0, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """The device end of a pseudo-terminal, and the feed reading its other end."""

    master: int
    feed: SerialNmeaFeed

    def send(self, data: bytes) -> None:
        """Write bytes as the receiver would (a thread: the terminal buffer is a few KiB)."""
        writer = threading.Thread(target=os.write, args=(self.master, data))
        writer.start()
        writer.join(timeout=10)

    def fixes(self, count: int, timeout_s: float = 10.0) -> list[Fix]:
        """At least `count` fixes, or what arrived within the timeout."""
        got: list[Fix] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            got += self.feed.take(0.2)
        return got


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A serial NMEA feed on a pseudo-terminal, connected before the test writes."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo or line editing before pyserial configures the port itself
    feed = SerialNmeaFeed(os.ttyname(slave), baud=9600)
    deadline = time.monotonic() + 5
    while feed.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield Receiver(master, feed)
    finally:
        feed.close()
        os.close(master)
        os.close(slave)


@pytest.fixture
def sim(tmp_path: Path) -> tuple[list[GnssFix], list[bytes]]:
    """Five seconds of a 5 Hz receiver driving north at 10 m/s, and its NMEA lines."""
    t = np.arange(0.0, 5.0 + 1e-9, 0.1)
    x, y = np.zeros_like(t), 10.0 * t
    fixes = simulate_fixes(
        t,
        x,
        y,
        np.full_like(t, 20.0),
        np.full_like(t, 10.0),
        np.zeros_like(t),
        frame=LocalFrame(24.94, 60.17),
        start_time=START,
        options=GnssOptions(rate_hz=5.0),
        rng=np.random.default_rng(3),
    )
    write_nmea(fixes, tmp_path / "sim.nmea")
    return fixes, (tmp_path / "sim.nmea").read_bytes().split(b"\r\n")[:-1]


def _crlf(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


def test_fixes_arrive_with_times_and_positions(
    receiver: Receiver, sim: tuple[list[GnssFix], list[bytes]]
) -> None:
    """Every epoch written to the port becomes one fix, the last one after the receiver falls
    silent, with the receiver's time and position."""
    truth, lines = sim
    receiver.send(_crlf(lines))
    got = receiver.fixes(len(truth))
    assert [f.time for f in got] == [s.time for s in truth]
    assert np.allclose([f.lat for f in got], [s.lat for s in truth], atol=1e-6)
    assert np.allclose([f.lon for f in got], [s.lon for s in truth], atol=1e-6)
    assert receiver.feed.bad == {}


def test_bad_lines_are_counted_and_the_rest_kept(
    receiver: Receiver, sim: tuple[list[GnssFix], list[bytes]]
) -> None:
    """A bad checksum, noise, an overlong line and a repeated epoch are each counted with a
    reason; every other epoch still gives its fix."""
    truth, lines = sim
    broken = [*lines]
    broken[3] = broken[3][:-2] + (b"11" if broken[3].endswith(b"00") else b"00")  # 2nd GGA
    broken.insert(6, b"@@ noise from a loose connector @@")
    broken.insert(8, b"\x55" * 3000)  # wrong baud rate: no line end at all
    broken += lines[20:22]  # an epoch repeated after the last one: time goes backwards
    receiver.send(_crlf(broken))
    got = receiver.fixes(len(truth))
    time.sleep(2.0)  # the repeated epoch is judged once the receiver falls silent
    got += receiver.feed.take(0.5)
    assert [f.time for f in got] == [s.time for s in truth]
    reasons = " | ".join(receiver.feed.bad)
    assert "checksum" in reasons
    assert "not a valid NMEA sentence" in reasons
    assert "no line end within 1 KiB" in reasons
    assert "time goes backwards" in reasons


def test_a_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    """A serial port that is not there is reported with what to give instead."""
    sources = _sources(nmea_serial=str(tmp_path / "ttyACM9"))
    with pytest.raises(UserInputError, match=r"does not exist.*--nmea-serial"):
        open_feed(sources, EdgeSettings())


def test_two_gnss_sources_are_refused() -> None:
    """gpsd and a serial port together: the driver is told to pick one."""
    with pytest.raises(UserInputError, match="give one GNSS source"):
        open_feed(_sources(gpsd="127.0.0.1:2947", nmea_serial="/dev/ttyACM0"), EdgeSettings())


def _sources(**given: str) -> Sources:
    fields = dict.fromkeys(Sources.__dataclass_fields__)
    fields["realtime"] = False
    fields.update(given)
    return Sources(**fields)  # type: ignore[arg-type]
