"""The soak's figures: sustained frames per second, queue depth over time, latencies."""

from __future__ import annotations

import statistics
from typing import Any

from tests.reliability.pipeline import PIPELINE_QUEUES
from tests.reliability.soak import SoakRun
from tests.reliability.soak_watch import UNACKED, Sample

TERMINAL_STATES = ("accepted", "quarantined")


def figures(run: SoakRun) -> dict[str, Any]:
    """The run's headline figures (rates over the load window, latencies in seconds)."""
    start, end = run.load_s
    load_s = end - start
    committed = sum(len(log.frame_ids) for log in run.logs)
    first, last = _at(run.samples, start), _at(run.samples, end)
    return {
        "drivers": len(run.logs),
        "frames_committed": committed,
        "batches_committed": sum(log.batches for log in run.logs),
        "load_s": round(load_s, 1),
        "committed_fps": round(committed / load_s, 2),
        "terminal_fps_during_load": round((_terminal(last) - _terminal(first)) / load_s, 2),
        "end_to_end_fps": _end_to_end(run, committed),
        "max_depth": {
            q: max(s.queues[q] for s in run.samples) for q in (*PIPELINE_QUEUES, UNACKED)
        },
        "drained_after_load_s": None if run.drained_s is None else round(run.drained_s, 1),
        "states": run.states,
        "quarantine": run.quarantine_reasons,
        "upload_to_accepted_s": _spread(run.latency.to_accepted),
        "upload_to_tile_s": _spread(run.latency.to_tiles),
        "posed_frames": run.latency.posed,
        "posed_frames_tiles_unseen": run.latency.tiles_unseen,
        "task_runs_and_seconds": {
            name: [runs, round(seconds, 1)]
            for name, (runs, seconds) in sorted(run.worker.tasks.items())
        },
        "worker_errors": len(run.worker.errors),
    }


def depth_table(samples: list[Sample], rows: int = 16) -> str:
    """Queue depths and terminal frames at about `rows` evenly spaced samples."""
    columns = (*PIPELINE_QUEUES, UNACKED)
    lines = ["   t_s " + "".join(f"{c:>9}" for c in columns) + f"{'terminal':>10}"]
    step = max(1, len(samples) // rows)
    for sample in [*samples[::step], samples[-1]] if samples else []:
        depths = "".join(f"{sample.queues[c]:>9}" for c in columns)
        lines.append(f"{sample.t_s:>6.1f} {depths}{_terminal(sample):>10}")
    return "\n".join(lines)


def _at(samples: list[Sample], t_s: float) -> Sample:
    """The last sample taken at or before `t_s` (the first one if none was)."""
    before = [s for s in samples if s.t_s <= t_s]
    return before[-1] if before else samples[0]


def _terminal(sample: Sample) -> int:
    return sum(sample.states.get(state, 0) for state in TERMINAL_STATES)


def _end_to_end(run: SoakRun, committed: int) -> float | None:
    """Frames per second from the load's start until the queues drained."""
    if run.drained_s is None:
        return None
    return round(committed / (run.load_s[1] - run.load_s[0] + run.drained_s), 2)


def _spread(values: list[float]) -> dict[str, float] | None:
    """Median, 95th percentile and maximum."""
    if len(values) < 2:
        return None
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return {
        "p50": round(statistics.median(values), 2),
        "p95": round(p95, 2),
        "max": round(max(values), 2),
    }
