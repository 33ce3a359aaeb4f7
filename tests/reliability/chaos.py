"""SIGKILL workers while their tasks run, and count what was hit.

`TaskWatch` reads the events `task_probe` writes: which task runs in which pool process, and how
long each task usually takes. `Killer` waits for a running task of a queue that still needs
kills, sleeps a random share of that task's usual duration, and SIGKILLs the pool process (the
worker's main process sees it die) or, now and then, the whole worker — main process and pool,
as a host crash would — then starts a new worker. A kill is a hit when the run it aimed at never
finished: it was cut off mid-task.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ingest.queues import (
    AUDIT_QUEUE,
    AUDIT_TASK,
    INGEST_QUEUE,
    LAYERS_REFRESH_TASK,
    LAYERS_UPDATE_TASK,
    MATCH_QUEUE,
    MATCH_TASK,
    RECONCILE_TASK,
    REWARDS_BINS_TASK,
    REWARDS_QUEUE,
    TILES_BUILD_TASK,
    TILES_POSES_TASK,
    TILES_QUEUE,
    TILES_SWEEP_TASK,
    VALIDATE_TASK,
)
from tests.reliability.task_probe import FINISHED, STARTED

QUEUE_OF_TASK = {
    VALIDATE_TASK: INGEST_QUEUE,
    RECONCILE_TASK: INGEST_QUEUE,
    AUDIT_TASK: AUDIT_QUEUE,
    MATCH_TASK: MATCH_QUEUE,
    TILES_POSES_TASK: TILES_QUEUE,
    TILES_BUILD_TASK: TILES_QUEUE,
    TILES_SWEEP_TASK: TILES_QUEUE,
    LAYERS_UPDATE_TASK: TILES_QUEUE,
    LAYERS_REFRESH_TASK: TILES_QUEUE,
    REWARDS_BINS_TASK: REWARDS_QUEUE,
}
PERIODIC_QUEUES = (INGEST_QUEUE, TILES_QUEUE, REWARDS_QUEUE)
"""Queues the scheduler sends a task to every few seconds (reconcile, sweep, bins)."""
POLL_S = 0.005
FINISHED_EVERY_S = 0.5
USUAL_S = 0.05
"""A task's duration until one run of it has finished (matching a sequence takes about this):
kills land within 0.8 x this of its start."""


@dataclass(frozen=True)
class Run:
    """One execution of a task by one pool process."""

    task_id: str
    name: str
    pid: int
    started_ns: int

    @property
    def queue(self) -> str:
        """The queue the task is sent to."""
        return QUEUE_OF_TASK.get(self.name, "other")


@dataclass
class TaskWatch:
    """The task runs seen so far in a probe folder."""

    folder: Path
    running: dict[tuple[str, int], Run] = field(default_factory=dict)
    finished: set[tuple[str, int]] = field(default_factory=set)
    durations_s: dict[str, float] = field(default_factory=dict)
    started_names: set[str] = field(default_factory=set)
    finished_names: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)

    def poll(self) -> None:
        """Read the events written since the last call."""
        names = sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))
        for name in names:
            if name not in self._seen:
                self._seen.add(name)
                self._read(json.loads((self.folder / name).read_text()))

    def _read(self, event: dict[str, object]) -> None:
        key = (str(event["task_id"]), int(str(event["pid"])))
        if event["event"] == STARTED:
            self.running[key] = Run(key[0], str(event["name"]), key[1], int(str(event["ns"])))
            self.started_names.add(str(event["name"]))
        elif event["event"] == FINISHED:
            run = self.running.pop(key, None)
            self.finished.add(key)
            self.finished_names.add(str(event["name"]))
            if run is not None:
                self.durations_s[run.name] = (int(str(event["ns"])) - run.started_ns) / 1e9

    def ended(self, run: Run) -> bool:
        """Whether this run has finished (read the folder first)."""
        self.poll()
        return (run.task_id, run.pid) in self.finished


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: the run it aimed at, whether the whole worker went, and the delay after the
    run's start (seconds)."""

    run: Run
    whole_worker: bool
    after_s: float


@dataclass
class KillPlan:
    """How many kills of each task (by name), at most `per_task` of one task (its message is
    given back each time, so every task ends), every `whole_every`-th kill the whole worker."""

    quota: dict[str, int]
    per_task: int = 2
    whole_every: int = 6
    seed: int = 0

    @property
    def total(self) -> int:
        """Kills planned."""
        return sum(self.quota.values())


class Workers(Protocol):
    """What the killer needs of the stack it kills in."""

    def crash_worker(self) -> None:
        """SIGKILL the whole worker (main process and pool), then start a new one."""
        ...


@dataclass
class Killer:
    """Kill task runs in `workers` as `plan` says; `kills` records each."""

    watch: TaskWatch
    plan: KillPlan
    workers: Workers
    kills: list[Kill] = field(default_factory=list)
    _per_task: Counter[str] = field(default_factory=Counter)

    def run(self, deadline_s: float, finished: Callable[[], bool]) -> None:
        """Kill until the plan is done, `deadline_s` (monotonic) has passed, or `finished()`
        (asked twice a second) says the pipeline's work is done; the scheduler's tasks keep
        coming after that, so their queues still get a kill each if they had none."""
        rng = random.Random(self.plan.seed)
        asked = time.monotonic()
        while len(self.kills) < self.plan.total and time.monotonic() < deadline_s:
            if time.monotonic() - asked > FINISHED_EVERY_S:
                killed = {k.run.queue for k in self.kills}
                if killed >= set(PERIODIC_QUEUES) and finished():
                    return
                asked = time.monotonic()
            self.watch.poll()
            target = self._target()
            if target is None:
                time.sleep(POLL_S)
                continue
            usual = self.watch.durations_s.get(target.name, USUAL_S)
            delay = rng.uniform(0.0, 0.8 * usual)
            time.sleep(max(0.0, target.started_ns / 1e9 + delay - time.time()))
            if self.watch.ended(target):
                continue
            self._kill(target, delay)

    def _target(self) -> Run | None:
        """The newest running run of a task still short of kills, not killed too often."""
        per_name = Counter(k.run.name for k in self.kills)
        for run in sorted(self.watch.running.values(), key=lambda r: -r.started_ns):
            wanted = per_name[run.name] < self.plan.quota.get(run.name, 0)
            if wanted and self._per_task[run.task_id] < self.plan.per_task:
                return run
        return None

    def _kill(self, run: Run, delay: float) -> None:
        whole = (len(self.kills) + 1) % self.plan.whole_every == 0
        self._per_task[run.task_id] += 1
        self.watch.running.pop((run.task_id, run.pid), None)
        if whole:
            self.workers.crash_worker()
        else:
            try:
                os.kill(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
        self.kills.append(Kill(run, whole, delay))

    def hits(self) -> list[Kill]:
        """The kills whose run never finished: cut off mid-task."""
        self.watch.poll()
        return [k for k in self.kills if (k.run.task_id, k.run.pid) not in self.watch.finished]

    def summary(self) -> dict[str, object]:
        """Kills and hits, by queue and task, for the report."""
        hits = self.hits()
        return {
            "kills": len(self.kills),
            "whole_worker_kills": sum(k.whole_worker for k in self.kills),
            "hits_mid_task": len(hits),
            "hits_by_queue": dict(sorted(Counter(k.run.queue for k in hits).items())),
            "hits_by_task": dict(sorted(Counter(k.run.name for k in hits).items())),
        }
