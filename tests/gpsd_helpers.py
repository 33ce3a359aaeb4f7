"""A real gpsd fed by gpsfake's engine (Debian's `gpsd` and `python3-gps`): a pseudo-terminal plays
an NMEA log line by line into gpsd, which reports it to clients on a loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
# Runs under the system Python, where `gps.fake` (the library behind the gpsfake command) lives.
# gpsd starts at once (-n) with the pseudo-terminal as its device; the log plays only after the
# test says "go", so a client watching first sees every epoch.
RUNNER = """
import sys, time
import gps.fake as fake
log, port, pace = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
session = fake.TestSession(options="-n", port=port, timeout=3600)
session.spawn()
def paced(line, gps):
    time.sleep(pace)
    return line < len(gps.testload.sentences)
session.gps_add(log, pred=paced, oneshot=True)
print("ready", flush=True)
sys.stdin.readline()
session.run()
"""


def require_gpsd() -> None:
    """Skip (or fail, when services are required) without gpsd and gpsfake's Python library."""
    problem = None
    if shutil.which("gpsd") is None and not Path("/usr/sbin/gpsd").exists():
        problem = "gpsd is not installed (apt-get install gpsd python3-gps)"
    elif (
        not Path(SYSTEM_PYTHON).exists()
        or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gps.fake"], capture_output=True, check=False
        ).returncode
    ):
        problem = "gpsfake's library is missing (apt-get install python3-gps)"
    if problem is None:
        return
    if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
        pytest.fail(problem)
    pytest.skip(problem)


@dataclass
class FakeReceiver:
    """gpsd on `port` with a log ready to play."""

    port: int
    process: subprocess.Popen[str]

    def play(self) -> None:
        """Start playing the log into gpsd."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gpsfake(log: Path, *, pace_s: float = 0.02) -> Iterator[FakeReceiver]:
    """A real gpsd with `log` loaded into a fake receiver (one line per `pace_s`)."""
    require_gpsd()
    port = free_port()
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"}
    with subprocess.Popen(
        [SYSTEM_PYTHON, "-c", RUNNER, str(log), str(port), str(pace_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # gpsd is its child: one process group to stop
    ) as process:
        try:
            assert process.stdout is not None
            ready = process.stdout.readline().strip()
            assert ready == "ready", f"gpsfake did not start gpsd (said {ready!r})"
            yield FakeReceiver(port, process)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
