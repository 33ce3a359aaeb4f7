"""`roadswarm serve --workers N`: N uvicorn processes, each accepting on a socket of its own.

uvicorn's own workers share one listening socket, and whichever process wakes first accepts a
whole burst of new connections: with 3 workers and 200 connections from wrk we saw 18/166/16
connections per worker, and the crowded one set the p99 (251 ms). Here every worker listens on its
own socket bound to the same address with SO_REUSEPORT, and the kernel spreads connections by
their address hash (68/63/69; p99 61-77 ms in the same runs, on a busy 2-core machine). The
parent keeps each socket open, so a worker that dies is replaced on the same socket and the
connections queued there wait for it instead of being refused.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from mapbuilder.serve.errors import ServeError

log = logging.getLogger(__name__)
CHECK_S = 0.5
STOP_TIMEOUT_S = 30.0
BACKLOG = 2048  # uvicorn's default
_SPAWN = multiprocessing.get_context("spawn")


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """A socket listening on host:port; `shared`: other sockets of this user may join it
    (SO_REUSEPORT), else it is the only one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        msg = f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port or stop what holds it"
        raise ServeError(msg) from exc
    return sock


def _shared_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets sharing host:port, once it is known that nobody else listens there.

    A second server's SO_REUSEPORT sockets would otherwise join ours and quietly take half the
    connections; a socket without the option cannot bind beside anyone, so it tells.
    """
    listening_socket(host, port, shared=False).close()
    return [listening_socket(host, port) for _ in range(count)]


def run_workers(options: dict[str, Any], *, host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes (uvicorn.Config `options` each) until SIGINT or SIGTERM."""
    sockets = _shared_sockets(host, port, workers)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    processes = [_start(options, sock) for sock in sockets]
    try:
        while not stop.wait(CHECK_S):
            for index, process in enumerate(processes):
                if not process.is_alive():
                    _check_started(process)
                    log.warning(
                        "API worker %s exited (%s): starting another", process.pid, process.exitcode
                    )
                    processes[index] = _start(options, sockets[index])
    finally:
        _stop(processes)
        for sock in sockets:
            sock.close()


def _start(options: dict[str, Any], sock: socket.socket) -> SpawnProcess:
    process = _SPAWN.Process(target=_serve, args=(options, sock), name="roadswarm-api-worker")
    process.start()
    return process


def _serve(options: dict[str, Any], sock: socket.socket) -> None:
    """A worker's body: one uvicorn server on the socket it was given."""
    uvicorn.Server(uvicorn.Config(**options)).run(sockets=[sock])


def _check_started(process: SpawnProcess) -> None:
    """A worker whose app could not start would fail again on every restart: stop instead."""
    if process.exitcode == STARTUP_FAILURE:
        msg = "an API worker could not start (its error is above): fix the settings it names and start again"
        raise ServeError(msg)


def _stop(processes: list[SpawnProcess]) -> None:
    """Ask every worker to finish (SIGTERM: in-flight requests end, usage is written), then wait."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            log.error("API worker %s did not stop within %g s: killed", process.pid, STOP_TIMEOUT_S)
            process.kill()
            process.join()
