"""Closing a reward epoch: 10 million matched frames over 100,000 segments and 1,000 devices.

1. Core (the issue's target: <= 60 s on 2 cores with <= 4 GB): synthetic arrays (frames spread
   over the week, a long tail of busy and quiet roads, `--history` earlier captures) are fed to the
   scoring core, then allocated, rooted (input root over every frame id, allocation root), signed
   and encoded as the ledger record, exactly as `rewards epoch close` does after loading. Each run
   is a fresh process pinned to 2 cores; its time excludes generating the arrays, its peak RSS
   includes them (they are what loading would hold). Median of `--repeats`.
2. Catalog (`--catalog-frames`, SQLite and PostgreSQL): the same kind of frames bulk-inserted
   with their matches, then `close_epoch` end to end; the loading (plain SQL into arrays) is
   timed on its own and reported as frames per second. This part is smaller than 10 million: the
   loading rate says what 10 million would cost on each database.
3. Summary (PostgreSQL, the production path): the core's epoch at full size reduced to the per-bin
   summary's rows, written once by binary COPY, then `close_epoch` end to end from it in fresh
   processes pinned to 2 cores (`bench._rewards_summary`); printed beside the core (the anchor),
   with the ratio of their medians.

There is no external anchor for this stage: figures are reported against the issue's targets.

    python -m bench.bench_rewards [--frames 10000000] [--segments 100000] [--devices 1000]
        [--history 5000000] [--repeats 3] [--catalog-frames 200000] [--skip-catalog]
        [--skip-summary] [--skip-core]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/test] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._common import verdict
from bench._rewards_catalog import catalog_runs
from bench._rewards_core import core_run
from bench._rewards_summary import close_run, summary_runs

TARGET_S = 60.0
TARGET_RSS_MB = 4096.0


def _child(args: argparse.Namespace) -> None:
    """One core run in this (fresh, pinned) process; prints its figures as JSON."""
    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    print(json.dumps(core_run(args.frames, args.segments, args.devices, args.history, args.seed)))


def _core(args: argparse.Namespace) -> dict[str, object]:
    runs = []
    for seed in range(args.repeats):
        command = [
            sys.executable, "-m", "bench.bench_rewards", "--child",
            "--frames", str(args.frames), "--segments", str(args.segments),
            "--devices", str(args.devices), "--history", str(args.history), "--seed", str(seed),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        runs.append(json.loads(done.stdout))
    median = {
        key: statistics.median(float(r[key]) for r in runs)
        for key in runs[0]
        if isinstance(runs[0][key], int | float)
    }
    return {"runs": runs, "median": median}


def _summary(report: dict[str, object]) -> None:
    core = report.get("core")
    if isinstance(core, dict):
        _core_summary(report, core["median"])
    catalog = report.get("catalog")
    if isinstance(catalog, dict):
        _catalog_summary(catalog)
    summary = report.get("summary")
    if isinstance(summary, dict):
        _summary_line(summary, core["median"] if isinstance(core, dict) else None)


def _summary_line(summary: dict[str, Any], core: dict[str, float] | None) -> None:
    median = summary["median"]
    ratio = f", {median['close_s'] / core['total_s']:.2f}x the core's time" if core else ""
    print(
        f"summary (PostgreSQL): {summary['epoch_rows']:,} epoch rows + {summary['history_rows']:,}"
        f" history rows for {median['frames']:,.0f} frames: close_epoch median {median['close_s']:.1f} s"
        f" (loading {median['load_s']:.1f} s), peak RSS {median['peak_rss_mb']:.0f} MB{ratio}"
        f" [{verdict(median['close_s'] <= TARGET_S and median['peak_rss_mb'] <= TARGET_RSS_MB)}]"
    )


def _core_summary(report: dict[str, object], median: dict[str, float]) -> None:
    print(
        f"core: {report['frames']:,} frames, {report['segments']:,} segments, {report['devices']:,} devices:"
        f" median {median['total_s']:.1f} s (score {median['score_s']:.1f}, allocate+roots+record"
        f" {median['record_s']:.1f}), peak RSS {median['peak_rss_mb']:.0f} MB"
        f" [{verdict(median['total_s'] <= TARGET_S and median['peak_rss_mb'] <= TARGET_RSS_MB)}]"
    )


def _catalog_summary(catalog: dict[str, dict[str, float]]) -> None:
    for name, figures in catalog.items():
        print(
            f"catalog {name}: {figures['frames']:,} frames loaded at {figures['load_frames_per_s']:,.0f} frames/s"
            f" (10M would take ~{10_000_000 / figures['load_frames_per_s']:.0f} s), close_epoch {figures['close_s']:.1f} s"
        )


def main() -> None:
    """Parse arguments, run the parts, print the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--history", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalog-frames", type=int, default=200_000)
    parser.add_argument("--skip-catalog", action="store_true")
    parser.add_argument("--skip-core", action="store_true")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--skip-summary", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--summary-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.summary_child:
        print(json.dumps(close_run(args.summary_child)))
        return
    report: dict[str, object] = {
        "frames": args.frames,
        "segments": args.segments,
        "devices": args.devices,
        "history": args.history,
    }
    if not args.skip_core:
        report["core"] = _core(args)
    if not args.skip_catalog:
        report["catalog"] = catalog_runs(args.catalog_frames, args.pg_admin_url)
    if not args.skip_summary:
        report["summary"] = summary_runs(
            args.pg_admin_url,
            frames=args.frames,
            segments=args.segments,
            devices=args.devices,
            history=args.history,
            repeats=args.repeats,
        )
    print(json.dumps(report, indent=2))
    _summary(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
