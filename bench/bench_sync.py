"""How well `edge process --estimate-offset` puts a video on the GNSS clock, on simulated drives.

For each drive (the bench_tiles world, one drive per `--drive-seeds` seed, made once in the
workdir) the video's start is told wrong by each of `--shifts` seconds, and the offset is
estimated from the video's motion profile and the drive's GPX track. Beside the estimator
(`edge.sync.estimate_offset`: image motion fitted on the logs of speed and turn rate), in the
same run, the speed-only correlation it replaced. Reported: the error left (seconds) per drive
and shift, and the median and largest absolute error of each.

    python -m bench.bench_sync [--minutes 1] [--drive-seeds 21,22,23,24] [--shifts -5,5,12]
        [--resolution 1920x1080] [--workdir DIR] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench._common import run_and_report
from bench.bench_tiles import prepare
from edge.gnss.gpx import read_gpx
from edge.sync import estimate_offset, motion_profile
from edge.track import Track

FloatArray = NDArray[np.float64]


def speed_only(energy: FloatArray, speed: FloatArray, turning: FloatArray) -> float:
    """The score the estimator used before: how the GNSS speed alone correlates with the image
    motion (the turn rate is ignored)."""
    return float(np.corrcoef(speed, energy)[0, 1])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    rows = []
    for seed in (int(s) for s in args.drive_seeds.split(",")):
        drive_args = argparse.Namespace(**{**vars(args), "drive_seed": seed})
        _, drive = prepare(drive_args, workdir)
        truth = json.loads((drive / "truth.json").read_text())
        start = datetime.fromisoformat(truth["video_start_time"]).timestamp()
        track = Track(read_gpx(drive / "track.gpx").fixes)
        times, energy = motion_profile(drive / "video.mp4")
        for wrong in (float(s) for s in args.shifts.split(",")):
            found = estimate_offset(track, start + wrong, times, energy)
            old = estimate_offset(track, start + wrong, times, energy, score=speed_only)
            rows.append(
                {
                    "drive_seed": seed,
                    "told_wrong_by_s": wrong,
                    "error_s": round(found.seconds + wrong, 2),
                    "correlation": found.correlation,
                    "speed_only_error_s": round(old.seconds + wrong, 2),
                }
            )
    return {"cases": rows, **_summary(rows, "error_s"), **_summary(rows, "speed_only_error_s")}


def _summary(rows: list[dict[str, float]], key: str) -> dict[str, float]:
    errors = [abs(row[key]) for row in rows]
    return {
        f"median_abs_{key}": round(statistics.median(errors), 2),
        f"max_abs_{key}": max(errors),
    }


def summary(report: dict[str, object]) -> None:
    print(
        f"offset error: median {report['median_abs_error_s']} s, largest {report['max_abs_error_s']} s"
        f" (speed only: median {report['median_abs_speed_only_error_s']} s, largest "
        f"{report['max_abs_speed_only_error_s']} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--drive-seeds", default="21,22,23,24")
    parser.add_argument("--shifts", default="-5,5,12")
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--osm", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    run_and_report(parser.parse_args(), "bench-sync-", run, summary)


if __name__ == "__main__":
    main()
