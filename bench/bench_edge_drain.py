"""How long the raw queue of a one-hour drive takes to drain: `roadswarm edge run` capturing a
simulated 1080p drive in real time on `--cores` CPUs, extrapolated to an hour at 50 km/h.

Method (every figure is the median of `--repeats` runs):
1. A `--minutes` 1920x1080 drive (the same world and seed as bench_edge).
2. The keyframe spacing is chosen so the drive gives, on average, the candidates per second of
   50 km/h with a keyframe every 4 m (3.47/s): spacing = 4 m x mean speed / 13.89 m/s. Capture then
   does per second what it does at 50 km/h (decode every frame, check and seal 3.47 candidates),
   and the privacy stage costs what it costs per keyframe. Trims are 0 m, so no candidate waits
   for the trip to move on (at 50 km/h the 200 m hold is 14 s of an hour).
3. `roadswarm edge run --realtime --until-drained`: the video played as a camera at its frame
   rate, the NMEA log as the receiver. From the spool's own timestamps (trip start and end,
   each keyframe's): keyframes anonymized per second while capturing (r_c) and after (r_a).
4. One hour at 50 km/h queues N = 12,500 candidates; the backlog when the drive ends is
   B = N - 3600 s x r_c, and it drains in B / r_a after the drive.
5. Anchor: `roadswarm edge process` on the same drive and spacing (the same keyframes with no
   capture beside them and no raw queue): its keyframes/s, and the ratios of r_c and r_a to it.

    python -m bench.bench_edge_drain [--minutes 1] [--repeats 3] [--cores 2] [--workdir DIR]
        [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
from pathlib import Path

from bench._common import number, run_and_report
from bench.bench_edge import ROADSWARM_MAIN, about_drive, prepare_drive, run_measured

TARGET_SPEED_MPS = 50.0 / 3.6
SPACING_M = 4.0
HOUR_S = 3600.0
CANDIDATES_PER_HOUR = TARGET_SPEED_MPS * HOUR_S / SPACING_M


def drive_args(drive: Path, spacing_m: float) -> list[str]:
    args = ["--video", str(drive / "video.mp4"), "--nmea", str(drive / "track.nmea")]
    args += ["--calibration", str(drive / "calibration.json")]
    return [*args, "--spacing-m", f"{spacing_m:.3f}", "--trim-m", "0"]


def measure_live(drive: Path, out: Path, spacing_m: float, cores: int) -> dict[str, float]:
    """One `edge run --realtime --until-drained`, and the rates its spool's timestamps give."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = ["edge", "run", *drive_args(drive, spacing_m), "--realtime", "--until-drained"]
    args += ["--spool", str(out / "spool"), "--identity-dir", str(out / "id"), "--api", ""]
    run = run_measured(
        Path(sys.executable), ROADSWARM_MAIN, [*args, "--json"], log=out / "run.log", cores=cores
    )
    if run.returncode:
        msg = f"edge run failed (exit {run.returncode}), see {out / 'run.log'}"
        raise RuntimeError(msg)
    return {**_rates(out / "spool" / "spool.sqlite3"), "peak_rss_mib": round(run.peak_rss_mib, 1)}


def _rates(database: Path) -> dict[str, float]:
    with sqlite3.connect(database) as db:
        started, ended = db.execute("SELECT started_at, ended_at FROM raw_trips").fetchone()
        queued, blob_bytes = db.execute(
            "SELECT COUNT(*), avg(size_bytes) FROM raw_candidates"
        ).fetchone()
        made = [row[0] for row in db.execute("SELECT created_at FROM keyframes ORDER BY 1")]
    during = sum(1 for t in made if t <= ended)
    drained_at = max(made[-1], ended)
    return {
        "capture_s": round(ended - started, 2),
        "candidates": queued,
        "candidates_per_s": round(queued / (ended - started), 3),
        "keyframes": len(made),
        "anonymized_while_capturing_per_s": round(during / (ended - started), 3),
        "anonymized_after_per_s": round((len(made) - during) / max(drained_at - ended, 1e-9), 3),
        "drained_after_capture_s": round(drained_at - ended, 2),
        "raw_frame_mb": round(blob_bytes / 1e6, 3),
    }


def measure_anchor(drive: Path, out: Path, spacing_m: float, cores: int) -> dict[str, float]:
    """`edge process` on the same drive and spacing: keyframes per wall second."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = ["edge", "process", *drive_args(drive, spacing_m), "--spool", str(out / "spool")]
    run = run_measured(
        Path(sys.executable),
        ROADSWARM_MAIN,
        [*args, "--json"],
        log=out / "process.log",
        cores=cores,
    )
    if run.returncode:
        msg = f"edge process failed (exit {run.returncode}), see {out / 'process.log'}"
        raise RuntimeError(msg)
    report = json.loads(run.stdout)
    return {
        "keyframes": report["keyframes"],
        "wall_s": round(run.wall_s, 2),
        "keyframes_per_s": round(report["keyframes"] / run.wall_s, 3),
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def project_hour(live: dict[str, float]) -> dict[str, float]:
    """Backlog and drain time after one hour at 50 km/h (see the module's method, step 4)."""
    during, after = live["anonymized_while_capturing_per_s"], live["anonymized_after_per_s"]
    backlog = max(0.0, CANDIDATES_PER_HOUR - HOUR_S * during)
    drain_s = backlog / after if after > 0 else float("inf")
    return {
        "candidates": round(CANDIDATES_PER_HOUR),
        "anonymized_during_drive": round(min(CANDIDATES_PER_HOUR, HOUR_S * during)),
        "backlog_at_drive_end": round(backlog),
        "drain_after_drive_h": round(drain_s / HOUR_S, 2),
        "raw_queue_peak_gb": round(backlog * live["raw_frame_mb"] / 1000, 2),
    }


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    drive, summary = prepare_drive(workdir, args.minutes)
    about = about_drive(summary)
    mean_speed = number(about, "km") * 1000 / number(about, "video_s")
    spacing = SPACING_M * mean_speed / TARGET_SPEED_MPS
    load_before = round(os.getloadavg()[0], 2)
    runs = [
        measure_live(drive, workdir / f"live-{i}", spacing, args.cores) for i in range(args.repeats)
    ]
    anchors = [
        measure_anchor(drive, workdir / f"process-{i}", spacing, args.cores)
        for i in range(args.repeats)
    ]
    live, anchor = median_of(runs), median_of(anchors)
    return {
        "cores": args.cores,
        "load_average_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "drive": about,
        "spacing_m": round(spacing, 3),
        "live_runs": runs,
        "live_median": live,
        "one_hour_at_50kmh": project_hour(live),
        "anchor_edge_process_runs": anchors,
        "anchor_edge_process_median": anchor,
        "ratio_while_capturing_to_process": round(
            live["anonymized_while_capturing_per_s"] / anchor["keyframes_per_s"], 3
        ),
        "ratio_after_capture_to_process": round(
            live["anonymized_after_per_s"] / anchor["keyframes_per_s"], 3
        ),
    }


def print_summary(report: dict[str, object]) -> None:
    live, hour = report["live_median"], report["one_hour_at_50kmh"]
    anchor, runs = report["anchor_edge_process_median"], report["live_runs"]
    assert isinstance(live, dict) and isinstance(hour, dict) and isinstance(anchor, dict)
    assert isinstance(runs, list)
    print(
        f"edge run (median of {len(runs)}): {live['candidates_per_s']} candidates/s queued; "
        f"anonymized {live['anonymized_while_capturing_per_s']}/s while capturing, "
        f"{live['anonymized_after_per_s']}/s after"
    )
    print(
        f"one hour at 50 km/h: {hour['candidates']} candidates, backlog "
        f"{hour['backlog_at_drive_end']} ({hour['raw_queue_peak_gb']} GB of raw frames) at the "
        f"end, drained {hour['drain_after_drive_h']} h after the drive "
        f"(x{hour['drain_after_drive_h']} the drive's duration)"
    )
    print(
        f"anchor edge process: {anchor['keyframes_per_s']} keyframes/s; live/process "
        f"{report['ratio_while_capturing_to_process']} while capturing, "
        f"{report['ratio_after_capture_to_process']} after"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2, help="CPUs the measured runs may use")
    parser.add_argument("--workdir", type=Path, default=None, help="keep and reuse the drive here")
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run_and_report(parse_args(argv), "bench-drain-", run_bench, print_summary)


if __name__ == "__main__":
    main()
