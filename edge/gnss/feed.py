"""Fixes as they arrive: from gpsd while driving, or from a recorded log replayed as if live.

A feed is polled by the capture loop. It hands over new fixes in time order and counts what it
could not use; `ended` says no more will come (a log is read at once; gpsd never ends by itself).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable

from edge.errors import EdgeError
from edge.gnss.fix import BadRecord, Fix
from edge.gnss.gpsd import DEFAULT_JAM_LIMIT, WATCH, GpsdParser
from edge.gnss.log import GnssLog

log = logging.getLogger(__name__)
DEFAULT_GPSD_PORT = 2947
RECONNECT_S = (1.0, 30.0)  # first wait and cap between reconnection attempts
IDLE_FLUSH_S = 1.5  # silence that ends an epoch (receivers report at 1 Hz or faster)


class GpsdAddressError(EdgeError):
    """A gpsd address that is not HOST:PORT."""


class FixFeed(ABC):
    """A source of fixes in time order, with the records it could not use counted by reason."""

    def __init__(self) -> None:
        self.bad: Counter[str] = Counter()
        self._early: list[Fix] = []  # taken by first_fix, handed over by the next take

    def take(self, timeout_s: float) -> list[Fix]:
        """The fixes that arrived since the last call, waiting up to `timeout_s` for one."""
        early, self._early = self._early, []
        return early + self._take(0.0 if early else timeout_s)

    def first_fix(self, timeout_s: float) -> Fix | None:
        """The first fix, waiting up to `timeout_s` for it; `take` still hands it over."""
        deadline = time.monotonic() + timeout_s
        while not self._early and not self._source_ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._early = self._take(min(remaining, 1.0))
        return self._early[0] if self._early else None

    @property
    def ended(self) -> bool:
        """No more fixes will come."""
        return self._source_ended and not self._early

    @abstractmethod
    def _take(self, timeout_s: float) -> list[Fix]:
        """New fixes from the source itself."""

    @property
    @abstractmethod
    def _source_ended(self) -> bool:
        """The source will give no more fixes."""

    @abstractmethod
    def close(self) -> None:
        """Stop reading."""

    def _count(self, record: BadRecord) -> None:
        self.bad[record.reason] += 1


class LogFeed(FixFeed):
    """A recorded log (GPX or NMEA), handed over whole at the first call."""

    def __init__(self, gnss: GnssLog) -> None:
        super().__init__()
        self._fixes: list[Fix] | None = list(gnss.fixes)
        for record in gnss.bad:
            self._count(record)

    def _take(self, timeout_s: float) -> list[Fix]:
        fixes, self._fixes = self._fixes or [], None
        return fixes

    @property
    def _source_ended(self) -> bool:
        return self._fixes is None

    def close(self) -> None:
        """Nothing to release: the log was read at once."""


def parse_gpsd_address(text: str) -> tuple[str, int]:
    """HOST[:PORT] (default port 2947)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_GPSD_PORT))
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"gpsd address {text!r} is not HOST:PORT: write it like 127.0.0.1:2947"
        raise GpsdAddressError(msg)
    return host, int(port)


class ThreadedFeed(FixFeed):
    """A live source read on a thread of its own, reopened with backoff whenever it fails (gpsd
    restarted, receiver unplugged), so capture never stops for it. Subclasses read one opening
    of the source in `_session` and hand what they read to `_put`."""

    def __init__(self, name: str, *, close_timeout_s: float) -> None:
        super().__init__()
        self.connections = 0
        self.last_problem: str | None = None
        self.close_timeout_s = close_timeout_s
        self._queue: queue.SimpleQueue[Fix | BadRecord] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _take(self, timeout_s: float) -> list[Fix]:
        fixes: list[Fix] = []
        try:
            report = (
                self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
            )
            while True:
                if isinstance(report, Fix):
                    fixes.append(report)
                else:
                    self._count(report)
                report = self._queue.get_nowait()
        except queue.Empty:
            pass
        return fixes

    @property
    def _source_ended(self) -> bool:
        return False

    def close(self) -> None:
        self._stop.set()
        self._interrupt()
        self._thread.join(timeout=self.close_timeout_s)

    def _interrupt(self) -> None:
        """Wake a reader blocked in `_session` (default: it wakes by its own read timeout)."""

    @property
    @abstractmethod
    def source_name(self) -> str:
        """The source as the driver knows it, for messages."""

    @abstractmethod
    def _session(self) -> None:
        """Open the source once and read it until it fails, ends or `_stop` is set."""

    def _put(self, reports: Iterable[Fix | BadRecord]) -> None:
        for report in reports:
            self._queue.put(report)

    def _run(self) -> None:
        wait = RECONNECT_S[0]
        while not self._stop.is_set():
            try:
                self._session()
                wait = RECONNECT_S[0]
            except OSError as exc:  # pyserial's SerialException is an OSError too
                if self._stop.is_set():
                    return  # close() shut the source under the reader
                self.last_problem = f"{self.source_name}: {exc}"
                log.warning("%s; reconnecting in %.0f s", self.last_problem, wait)
            self._stop.wait(wait)
            wait = min(RECONNECT_S[1], wait * 2)


class GpsdFeed(ThreadedFeed):
    """A client of gpsd's JSON protocol."""

    def __init__(
        self, host: str, port: int, *, jam_limit: int = DEFAULT_JAM_LIMIT, timeout_s: float = 5.0
    ) -> None:
        super().__init__("gpsd", close_timeout_s=timeout_s)
        self.address = (host, port)
        self.jam_limit = jam_limit
        self.timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread.start()

    @property
    def source_name(self) -> str:
        return f"gpsd at {self.address[0]}:{self.address[1]}"

    def _interrupt(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()

    def _session(self) -> None:
        """One connection: watch, then read lines until gpsd closes it or we are stopped."""
        connection = socket.create_connection(self.address, timeout=self.timeout_s)
        with self._lock:
            self._socket = connection
        parser = GpsdParser(jam_limit=self.jam_limit)
        try:
            connection.sendall(WATCH)
            self.connections += 1
            log.info("watching gpsd at %s:%d", *self.address)
            # A quiet receiver ends its last epoch: without this the final fix would wait forever.
            connection.settimeout(IDLE_FLUSH_S)
            buffered = b""
            while not self._stop.is_set():
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    self._put(parser.flush())
                    continue
                if not chunk:
                    return
                *lines, buffered = (buffered + chunk).split(b"\n")
                for line in lines:
                    self._put(parser.feed(line))
        finally:
            self._put(parser.flush())
            with self._lock:
                self._socket = None
            connection.close()
