"""Tasks only the embedded-stack tests send, to show that work really runs in a worker process."""

from __future__ import annotations

import os
from pathlib import Path

from celery import shared_task


def add(x: int, y: int) -> int:
    """Return the sum of two numbers."""
    return x + y


def write_pid(path: str) -> int:
    """Write the current process id to `path` and return it."""
    pid = os.getpid()
    Path(path).write_text(str(pid))
    return pid


# Registered without decorator syntax so that the plain functions keep their types under mypy.
add_task = shared_task(name="tests.add")(add)
write_pid_task = shared_task(name="tests.write_pid")(write_pid)
