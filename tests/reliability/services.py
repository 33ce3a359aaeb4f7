"""Services the reliability suite may crash and restart: a private redis-server, a private
RabbitMQ node and a Celery beat, each in its own process group on loopback, never the shared
ones other suites use.

`crash()` SIGKILLs the whole process group (no shutdown, nothing saved), `start()` brings the
service back on the same port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from roadswarm.api_server import free_port
from roadswarm.stack import process_group_gone, tail

READY_TIMEOUT_S = 120.0
RABBIT_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
"""The node itself: /usr/sbin/rabbitmq-server would switch to the system's rabbitmq user."""


class GroupProcess:
    """A command run in its own session, its output appended to `log_path`."""

    def __init__(self, command: Sequence[str], *, log_path: Path, env: Mapping[str, str]) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        """Start the process."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Kill what is left of it."""
        self.crash()

    def start(self) -> None:
        """Start the command, then wait until `ready()`; raise RuntimeError with its log if not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.log_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.crash()
                msg = f"{self.command[0]} did not start; end of {self.log_path}:\n{tail(self.log_path)}"
                raise RuntimeError(msg)
            time.sleep(0.1)

    def ready(self) -> bool:
        """Whether the service answers (subclasses check their port)."""
        return True

    def crash(self) -> None:
        """SIGKILL the whole process group and reap it."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            deadline = time.monotonic() + 30
            while not process_group_gone(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._log is not None:
            self._log.close()
            self._log = None


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class RedisServer(GroupProcess):
    """A private redis-server on a free loopback port, keeping nothing on disk: a crash loses
    every queued message, the worst a broker restart can do."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        command = [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ]
        super().__init__(command, log_path=workdir / "redis.log", env=os.environ)

    @property
    def url(self) -> str:
        """Broker URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        """Whether redis answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class RabbitNode(GroupProcess):
    """A private RabbitMQ node (own name, ports, data and logs in `workdir`, no plugins); the
    system's epmd is shared, as every node on a host shares it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (workdir / "enabled_plugins").write_text("[].\n")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"roadswarm-test-{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(workdir / "feature_flags"),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbit.pid"),
        }
        super().__init__([str(RABBIT_SCRIPT)], log_path=workdir / "rabbit.out", env=env)

    @property
    def url(self) -> str:
        """Broker URL of the default virtual host."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ready(self) -> bool:
        """Whether the node accepts AMQP connections."""
        return port_open(self.port)


class BeatProcess(GroupProcess):
    """`celery beat` for the worker app (the scheduler of the reconciler and the sweeps)."""

    def __init__(self, workdir: Path, env: Mapping[str, str], python_path: Path) -> None:
        command = [
            *(sys.executable, "-m", "celery", "-A", "roadswarm.worker_app", "beat"),
            *("--schedule", str(workdir / "beat-schedule"), "--loglevel", "INFO"),
        ]
        paths = os.pathsep.join([str(python_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        super().__init__(command, log_path=workdir / "beat.log", env={**env, "PYTHONPATH": paths})

    def ready(self) -> bool:
        """Whether the scheduler says it has started."""
        return self.log_path.exists() and b"beat: Starting" in self.log_path.read_bytes()
