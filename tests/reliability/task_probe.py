"""Loaded into the reliability suite's workers (through `ROADSWARM_TASK_MODULES`): each task run
leaves a file when it starts and one when it ends, naming the task and the pool process running
it, so a test can SIGKILL that process while the task really runs (and tell afterwards whether
the run ended before the kill landed).

Without `ROADSWARM_TEST_PROBE_DIR` in the environment the probe does nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

PROBE_DIR_ENV = "ROADSWARM_TEST_PROBE_DIR"
STARTED, FINISHED = "started", "finished"


def _started(task_id: str, task: Any, **_: Any) -> None:
    _mark(task_id, task.name, STARTED)


def _finished(task_id: str, task: Any, **_: Any) -> None:
    _mark(task_id, task.name, FINISHED)


def _mark(task_id: str, name: str, event: str) -> None:
    """Write one event file atomically (a reader never sees half of one)."""
    folder = os.environ.get(PROBE_DIR_ENV)
    if not folder:
        return
    now_ns = time.time_ns()
    record = {"task_id": task_id, "name": name, "pid": os.getpid(), "event": event, "ns": now_ns}
    final = Path(folder) / f"{now_ns}.{os.getpid()}.{event}.json"
    temporary = final.with_name("." + final.name)
    temporary.write_text(json.dumps(record))
    temporary.rename(final)


task_prerun.connect(_started, weak=False)
task_postrun.connect(_finished, weak=False)
