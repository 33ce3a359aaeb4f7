"""A worker's pool processes share the cores: each model session takes its share of threads."""

from __future__ import annotations

from typing import Any

import pytest

from ingest import tasks
from ingest.queues import WORKER_PROCESSES_ENV, publish_pool_size
from models import runtime
from models.scan import PrivacyScanner
from models.settings import DetectionSettings, ModelSettings


def _loaded_threads(monkeypatch: pytest.MonkeyPatch) -> int:
    """The intra-op threads this process's audit scanner is loaded with."""
    seen: list[DetectionSettings] = []

    def load(settings: DetectionSettings, models: ModelSettings) -> tuple[Any, Any]:
        seen.append(settings)
        return object(), object()

    monkeypatch.setattr(PrivacyScanner, "load_detectors", staticmethod(load))
    monkeypatch.setattr(tasks, "_scanners", {})
    tasks.worker_scanner()
    return seen[0].threads


def test_each_pool_process_gets_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pool processes on four cores run two threads each; more processes than cores, one."""
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    monkeypatch.setenv(WORKER_PROCESSES_ENV, "unset at the end")
    monkeypatch.delenv(WORKER_PROCESSES_ENV)
    monkeypatch.delenv("ROADSWARM_PRIVACY_THREADS", raising=False)
    publish_pool_size(options={"concurrency": 2})
    assert _loaded_threads(monkeypatch) == 2
    monkeypatch.setenv(WORKER_PROCESSES_ENV, "8")
    assert _loaded_threads(monkeypatch) == 1


def test_configured_threads_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ROADSWARM_PRIVACY_THREADS` is taken as given."""
    monkeypatch.setenv(WORKER_PROCESSES_ENV, "2")
    monkeypatch.setenv("ROADSWARM_PRIVACY_THREADS", "3")
    assert _loaded_threads(monkeypatch) == 3
