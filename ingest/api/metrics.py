"""Prometheus metrics, read from the catalog and the broker at scrape time.

The catalog is the source of truth and is shared by every worker on every host, so one scrape of
the API gives the whole pipeline's state without each worker process exporting its own.
Per-task metrics of Celery itself (rates, runtimes, failures per worker) come from Flower's own
/metrics on the same broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ingest.api.services import ApiServices
from ingest.catalog import TaskRun
from ingest.ops import (
    dead_letter_count,
    frames_by_state,
    oldest_pending,
    quarantine_counts,
    queue_depths,
)


class CatalogCollector(Collector):
    """Frames per state, quarantine per reason, stage work done, queue depths."""

    def __init__(self, services: ApiServices) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One consistent reading per scrape."""
        catalog = self.services.catalog
        states = GaugeMetricFamily("roadswarm_frames", "Frames by pipeline state", labels=["state"])
        for state, count in frames_by_state(catalog).items():
            states.add_metric([state], count)
        yield states
        reasons = GaugeMetricFamily(
            "roadswarm_quarantined_frames", "Unreleased quarantine entries", labels=["reason"]
        )
        for reason, count in quarantine_counts(catalog).items():
            reasons.add_metric([reason], count)
        yield reasons
        yield GaugeMetricFamily(
            "roadswarm_dead_letters", "Frames given up on", value=dead_letter_count(catalog)
        )
        oldest = oldest_pending(catalog, self.services.clock())
        yield GaugeMetricFamily(
            "roadswarm_oldest_pending_seconds",
            "Age of the oldest frame not yet through the pipeline",
            value=oldest["waiting_s"] if oldest else 0.0,
        )
        yield from self._stage_counters()
        if self.services.celery is not None:
            depths = GaugeMetricFamily(
                "roadswarm_queue_depth", "Messages waiting", labels=["queue"]
            )
            for queue, depth in queue_depths(self.services.celery).items():
                if depth is not None:
                    depths.add_metric([queue], depth)
            yield depths

    def _stage_counters(self) -> Iterator[CounterMetricFamily]:
        query = select(
            TaskRun.stage, func.count(), func.sum(TaskRun.frames), func.sum(TaskRun.seconds)
        ).group_by(TaskRun.stage)
        with self.services.catalog.session() as session:
            rows = session.execute(query).all()
        tasks = CounterMetricFamily(
            "roadswarm_stage_tasks", "Stage tasks finished", labels=["stage"]
        )
        frames = CounterMetricFamily(
            "roadswarm_stage_frames", "Frames through a stage", labels=["stage"]
        )
        seconds = CounterMetricFamily(
            "roadswarm_stage_seconds", "Seconds spent in a stage", labels=["stage"]
        )
        for stage, count, frame_count, spent in rows:
            tasks.add_metric([stage], count)
            frames.add_metric([stage], frame_count or 0)
            seconds.add_metric([stage], spent or 0.0)
        yield from (tasks, frames, seconds)


class ApiMetrics:
    """The registry one app exposes: catalog readings plus its own request latencies."""

    def __init__(self, services: ApiServices) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(CatalogCollector(services))
        self.requests = Histogram(
            "roadswarm_api_request_seconds",
            "API request latency",
            ["route", "status"],
            registry=self.registry,
        )

    def observe(self, route: str, status: int, started: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, str(status)).observe(time.perf_counter() - started)
