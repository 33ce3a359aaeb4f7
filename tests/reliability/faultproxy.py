"""A TCP proxy on loopback that makes a good network bad: latency, a bandwidth limit, connections
reset partway, and responses cut short.

Every chunk forwarded (at most 16 KiB, either way) may meet a fault, drawn from a seeded
generator so that a run can be repeated: a reset forwards part of the chunk, then closes both
sides with SO_LINGER 0 (the peer sees ECONNRESET); a truncation, on the server's side only,
forwards part of its answer and closes cleanly, as a proxy or a NAT timing out would. The
counters say what was done.
"""

from __future__ import annotations

import random
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

CHUNK = 16 * 1024


@dataclass(frozen=True)
class Faults:
    """What to do to the traffic; rates are chances per chunk forwarded."""

    latency_s: float = 0.0  # added before every chunk forwarded, both ways
    bytes_per_s: float | None = None  # each direction of each connection
    reset_rate: float = 0.0
    truncate_rate: float = 0.0  # of the server's chunks
    seed: int = 0


@dataclass
class Counters:
    """What the proxy did so far."""

    connections: int = 0
    resets: int = 0
    truncations: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: int) -> None:
        with self.lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


class FaultProxy:
    """Forward 127.0.0.1:<port> to `target` with `faults` while the context is open."""

    def __init__(self, target: tuple[str, int], faults: Faults) -> None:
        self.target = target
        self.faults = faults
        self.counters = Counters()
        self._rng = random.Random(faults.seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        """http:// base URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by __exit__
            self.counters.add(connections=1)
            threading.Thread(
                target=self._serve, args=(client,), name="fault-pipe", daemon=True
            ).start()

    def draw(self, *, downstream: bool) -> tuple[str, float]:
        """The fault a chunk meets ("pass", "reset" or "truncate") and where in it (0-1)."""
        with self.counters.lock:
            roll, cut = self._rng.random(), self._rng.random()
        if roll < self.faults.reset_rate:
            return "reset", cut
        if downstream and roll < self.faults.reset_rate + self.faults.truncate_rate:
            return "truncate", cut
        return "pass", 1.0

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=30)
        except OSError:
            _reset(client)
            return
        _Pipe(client, server, self).run()


class _Pipe:
    """One proxied connection, both directions on one thread: a socket is only ever closed by
    the thread that reads it (closing a socket another thread is blocked on sends nothing)."""

    def __init__(self, client: socket.socket, server: socket.socket, proxy: FaultProxy) -> None:
        self.client, self.server = client, server
        self.proxy = proxy

    def run(self) -> None:
        faults = self.proxy.faults
        with selectors.DefaultSelector() as selector:
            selector.register(self.client, selectors.EVENT_READ, (self.server, False))
            selector.register(self.server, selectors.EVENT_READ, (self.client, True))
            try:
                while True:
                    for key, _ in selector.select(timeout=60):
                        source = key.fileobj
                        assert isinstance(source, socket.socket)
                        sink, downstream = key.data
                        chunk = source.recv(CHUNK)
                        if not chunk:
                            return
                        if faults.latency_s:
                            time.sleep(faults.latency_s)
                        if faults.bytes_per_s:
                            time.sleep(len(chunk) / faults.bytes_per_s)
                        if not self._forward(chunk, sink, downstream=downstream):
                            return
                        counter = "bytes_down" if downstream else "bytes_up"
                        self.proxy.counters.add(**{counter: len(chunk)})
            except OSError:
                return
            finally:
                selector.close()
                self.client.close()
                self.server.close()

    def _forward(self, chunk: bytes, sink: socket.socket, *, downstream: bool) -> bool:
        """Send the chunk, or the part of it its fault lets through; False after a fault."""
        fault, cut = self.proxy.draw(downstream=downstream)
        if fault == "pass":
            sink.sendall(chunk)
            return True
        sink.sendall(chunk[: int(len(chunk) * cut)])
        if fault == "reset":
            self.proxy.counters.add(resets=1)
            _reset(self.client)
            _reset(self.server)
        else:
            self.proxy.counters.add(truncations=1)
            self.client.shutdown(socket.SHUT_RDWR)
        return False


def _reset(end: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer's next read or write fails."""
    try:
        end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        end.close()
    except OSError:
        pass
