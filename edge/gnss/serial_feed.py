"""Fixes from an NMEA receiver on a serial port, read directly (no gpsd needed).

Many dashcam receivers are a USB or UART serial device that prints NMEA 0183 at 1-10 Hz. The
sentences go through the same reader as NMEA logs, so checksums, talkers and fix quality are
judged alike; the port is reopened with backoff when it goes away (receiver unplugged, USB reset).
"""

from __future__ import annotations

import logging

import serial

from edge.gnss.feed import IDLE_FLUSH_S, ThreadedFeed
from edge.gnss.fix import BadRecord, Fix
from edge.gnss.log import out_of_order
from edge.gnss.nmea import ASCII_SPACE, NmeaReader

log = logging.getLogger(__name__)
DEFAULT_BAUD = 9600
# A serial link that never sends a newline (a wrong baud rate gives noise) must not grow a line
# without bound: NMEA sentences are at most 82 characters.
MAX_LINE_BYTES = 1024


class SerialNmeaFeed(ThreadedFeed):
    """NMEA sentences from a serial port, merged into fixes as each epoch ends."""

    def __init__(self, port: str, *, baud: int = DEFAULT_BAUD) -> None:
        super().__init__("nmea-serial", close_timeout_s=IDLE_FLUSH_S + 1.0)
        self.port = port
        self.baud = baud
        self._last_fix: Fix | None = None
        self._lines = 0
        self._thread.start()

    @property
    def source_name(self) -> str:
        return f"NMEA serial port {self.port}"

    def _session(self) -> None:
        """One opening of the port: read lines until it fails or we are stopped."""
        reader = NmeaReader(self.port)
        with serial.Serial(self.port, baudrate=self.baud, timeout=IDLE_FLUSH_S) as port:
            self.connections += 1
            log.info("reading NMEA from %s at %d baud", self.port, self.baud)
            pending = b""
            try:
                while not self._stop.is_set():
                    chunk = port.readline(MAX_LINE_BYTES - len(pending))
                    if not chunk:
                        # A quiet receiver ends its last epoch: without this it would wait forever.
                        reader.end_epoch()
                    pending += chunk
                    if pending.endswith(b"\n"):
                        self._lines += 1
                        if text := pending.decode("utf-8", "replace").strip(ASCII_SPACE):
                            reader.feed(self._lines, text)
                        pending = b""
                    elif len(pending) >= MAX_LINE_BYTES:
                        self._lines += 1
                        reader.reject(self._lines, "no line end within 1 KiB: check the baud rate")
                        pending = b""
                    self._hand_over(reader)
            finally:
                reader.end_epoch()
                self._hand_over(reader)

    def _hand_over(self, reader: NmeaReader) -> None:
        """Pass on the reader's new fixes (in time order) and bad records, and forget them."""
        fixes, reader.fixes, reader.locations = reader.fixes, [], []
        bad, reader.bad = reader.bad, []
        self._put(bad)
        for fix in fixes:
            if self._last_fix is not None and fix.time <= self._last_fix.time:
                reason = out_of_order(self._last_fix, fix)
                self._put([BadRecord(self.port, f"fix at {fix.time.isoformat()}", reason)])
            else:
                self._last_fix = fix
                self._put([fix])
