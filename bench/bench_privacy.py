"""How well and how fast the privacy stage finds and blurs faces and plates, against deface.

1. Accuracy on the shared data (`--data`): recall of the labelled plates and faces, and the mean
   share of the image blurred, on the images as they are, shrunk into a dashcam-like canvas, and
   (faces) at one third size. No horizon: these are generic photos.
2. Speed and memory of `Anonymizer.anonymize` (detection and blur) on `--frames` simulated
   1920x1080 dashcam frames, each configuration in a fresh process so its peak RSS is its own.
3. Anchor (faces only): deface's command-line tool, from its own cached virtual environment in
   `~/.cache/roadswarm/bench/deface-venv`, on the same frames.

    python -m bench.bench_privacy [--data ../shared/data/privacy] [--frames 20] [--skip-anchor]
        [--json-out FILE]

Weights come from `ROADSWARM_MODELS_DIR` as for the edge app. The plate model is YOLOv8s-seg as
packaged by platedet; deface needs `onnx` beside `onnxruntime` for its onnxrt backend.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from bench._common import ensure_venv, number, verdict
from bench._privacy_data import BLURRED_TARGET, EVAL_SETS, evaluate_set
from edge.anonymize import Anonymized, Anonymizer, horizon_row
from edge.settings import PrivacySettings
from models.settings import ModelSettings
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import build_world
from tests.osm_fixtures import write_grid_osm

# "+prepared": with the fastest variant `roadswarm models prepare` offered; without it, the
# published models as fetched.
CONFIGS = ("dashcam-horizon", "no-horizon", "dashcam-horizon+prepared", "no-horizon+prepared")
FPS_TARGET = 4.0
RSS_TARGET_MIB = 1536
DEFACE_VENV = Path.home() / ".cache" / "roadswarm" / "bench" / "deface-venv"
DEFACE_PACKAGES = ("deface", "onnx", "onnxruntime")
DEFACE_THRESHOLD = "0.2"
JPEG_QUALITY = 95
# `deface ARGS...` as its console script runs it, plus its peak RSS (Linux VmHWM) written at exit.
DEFACE_WRAPPER = """
import atexit, sys
from pathlib import Path
out = Path(sys.argv[1])
def hwm():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    out.write_text(line.split()[1])
atexit.register(hwm)
sys.argv = ["deface", *sys.argv[2:]]
from deface.deface import main
main()
"""


def quiet_onnxruntime() -> None:
    """CenterFace makes onnxruntime warn thousands of times at load; errors only."""
    ort.set_default_logger_severity(3)


def peak_rss_mib() -> float:
    """This process's own peak resident memory. Linux's `ru_maxrss` also counts the parent's peak
    at fork for a spawned child, so the kernel's high-water mark of this process is read instead."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_anonymizer(*, prepared: bool = False) -> Anonymizer:
    return Anonymizer.load(PrivacySettings(use_prepared=prepared), ModelSettings())


# Frames -------------------------------------------------------------------------------------


def render_frames(scratch: Path, count: int) -> tuple[list[Path], Path, dict[str, object]]:
    """`count` JPEG frames spread over a short simulated 1920x1080 drive, its calibration, and
    what the drive holds (frames, plates and faces visible over the whole video)."""
    world = build_world(write_grid_osm(scratch / "grid.osm"), scratch / "world", seed=1)
    drive = scratch / "drive"
    options = DriveOptions(minutes=0.1, seed=3, width_px=1920, height_px=1080)
    summary = simulate_drive(world, drive, options)
    frames = scratch / "frames"
    frames.mkdir()
    paths = []
    for index, image in _video_frames(drive / "video.mp4", count):
        path = frames / f"frame-{index:04d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        paths.append(path)
    about: dict[str, object] = {
        "video_frames": summary.frames,
        "frames_used": len(paths),
        "plates_seen_in_video": summary.plates_seen,
        "faces_seen_in_video": summary.faces_seen,
        **_truth_in_frames(drive / "truth.json", [int(p.stem.split("-")[1]) for p in paths]),
    }
    return paths, drive / "calibration.json", about


def _truth_in_frames(truth: Path, indices: list[int]) -> dict[str, object]:
    """The simulator's plates and faces (over half visible) in the frames used, with their heights."""
    frames = json.loads(truth.read_text())["frames"]
    boxes = [b for i in indices for b in frames[i]["boxes"] if b["visible"] > 0.5]
    about: dict[str, object] = {}
    for kind in ("plate", "face"):
        heights = sorted(b["h"] for b in boxes if b["kind"] == kind)
        about[f"{kind}s_in_frames_used"] = len(heights)
        about[f"{kind}_h_px_min_median_max"] = (
            [heights[0], heights[len(heights) // 2], heights[-1]] if heights else []
        )
    return about


def _video_frames(video: Path, count: int) -> list[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
    picked = []
    for index in range(total):
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            picked.append((index, image))
    capture.release()
    return picked


# Speed worker (runs in its own process) -----------------------------------------------------


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure_speed(config: str, frames: list[Path], calibration: Path) -> dict[str, object]:
    """Per-frame seconds of `anonymize`, and of the face detector alone, over every frame after
    one warm-up frame; frames are read one at a time so peak memory holds one frame."""
    anonymizer = load_anonymizer(prepared=config.endswith("+prepared"))
    horizon = None
    if config.startswith("dashcam-horizon"):
        data = json.loads(calibration.read_text())
        horizon = horizon_row(data["camera_matrix"], data["pitch_deg"])
    first = np.asarray(cv2.imread(str(frames[0])), np.uint8)
    anonymizer.anonymize(first, horizon=horizon)
    stage, faces_only, io = [], [], []
    counts = {"faces": 0, "plates": 0, "unusable": 0}
    for path in frames:
        started = time.perf_counter()
        image = np.asarray(cv2.imread(str(path)), np.uint8)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        result = anonymizer.anonymize(image, horizon=horizon)
        stage.append(time.perf_counter() - started)
        if isinstance(result, Anonymized):
            counts["faces"] += len(result.faces)
            counts["plates"] += len(result.plates)
            io.append(read_s + _timed(partial(cv2.imencode, ".jpg", result.image)))
        else:
            counts["unusable"] += 1
        faces_only.append(_time_faces(anonymizer, image, horizon))
    summary = _speed_summary(config, horizon, stage, faces_only, io, counts)
    return {**summary, "provider": anonymizer.face.provider, "models": anonymizer.model_versions}


def _time_faces(anonymizer: Anonymizer, image: np.ndarray, horizon: float | None) -> float:
    height, width = image.shape[:2]
    views = anonymizer.views(anonymizer.face, width, height, horizon)
    threshold = anonymizer.settings.face_threshold
    return _timed(partial(anonymizer._run, anonymizer.face, image, views, threshold))


def _speed_summary(
    config: str,
    horizon: float | None,
    stage: list[float],
    faces_only: list[float],
    io: list[float],
    counts: dict[str, int],
) -> dict[str, object]:
    fps = len(stage) / sum(stage)
    rss_mib = peak_rss_mib()
    return {
        "config": config,
        "horizon_row": None if horizon is None else round(horizon, 1),
        "frames": len(stage),
        "median_s": round(statistics.median(stage), 4),
        "fps": round(fps, 2),
        "fps_target": FPS_TARGET,
        "peak_rss_mib": round(rss_mib, 1),
        "rss_target_mib": RSS_TARGET_MIB,
        "faces_only_median_s": round(statistics.median(faces_only), 4),
        "faces_only_fps": round(len(faces_only) / sum(faces_only), 2),
        "jpeg_read_write_median_s": round(statistics.median(io), 4) if io else None,
        "detections": counts,
    }


def run_speed_worker(config: str, frames: list[Path], calibration: Path) -> dict[str, object]:
    """`measure_speed` in a fresh interpreter: nothing this process loaded counts to its memory."""
    command = [sys.executable, "-m", "bench.bench_privacy", "--speed-worker", config]
    command += ["--calibration", str(calibration), *map(str, frames)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"config": config, "error": done.stderr[-2000:]}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# Anchor: deface ------------------------------------------------------------------------------


def deface_command() -> Path:
    """deface in its own virtual environment (its opencv-python must stay out of the project's);
    its ONNX runtime backend needs `onnx` as well as `onnxruntime`."""
    return ensure_venv(DEFACE_VENV, DEFACE_PACKAGES) / "deface"


def _run_deface(deface: Path, frames: list[Path], work: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one deface run on copies of `frames` (it writes
    `NAME_anonymized.jpg` beside each input). Its console entry point is called through a wrapper
    that records the process's own high-water mark, which `ru_maxrss` would mix with ours."""
    work.mkdir()
    copies = [Path(shutil.copy(frame, work)) for frame in frames]
    python = deface.parent / "python"
    hwm = work / "vmhwm-kib"
    options = ["--thresh", DEFACE_THRESHOLD, "--backend", "onnxrt"]
    command = [str(python), "-c", DEFACE_WRAPPER, str(hwm), *options, *map(str, copies)]
    with (work / "deface.log").open("w") as log:
        started = time.perf_counter()
        done = subprocess.run(command, stdout=log, stderr=log, check=False)
        seconds = time.perf_counter() - started
    written = len(list(work.glob("*_anonymized.jpg")))
    if done.returncode or written != len(frames):
        msg = f"deface failed ({written}/{len(frames)} written): see {work / 'deface.log'}"
        raise RuntimeError(msg)
    return seconds, int(hwm.read_text()) / 1024


def measure_anchor(frames: list[Path], scratch: Path, speed: list[dict[str, object]]) -> object:
    """deface on 1 frame (its start-up) and on all frames: the difference is its per-frame cost."""
    if len(frames) < 2:
        return {"skipped": "needs at least 2 frames"}
    deface = deface_command()
    one_s, _ = _run_deface(deface, frames[:1], scratch / "deface-1")
    all_s, rss = _run_deface(deface, frames, scratch / "deface-n")
    per_frame = (all_s - one_s) / (len(frames) - 1)
    version = subprocess.run(
        [str(deface), "--version"], capture_output=True, text=True, check=False
    )
    anchor: dict[str, object] = {
        "tool": f"deface {version.stdout.strip()} (--thresh {DEFACE_THRESHOLD}, onnxrt, full size)",
        "startup_s": round(one_s, 2),
        "all_frames_s": round(all_s, 2),
        "per_frame_s": round(per_frame, 4),
        "fps": round(1 / per_frame, 2),
        "peak_rss_mib": round(rss, 1),
        "note": "deface: faces only, per-frame time includes JPEG read and write; roadswarm: "
        "faces and plates, frames in memory (see jpeg_read_write_median_s)",
    }
    for entry in speed:
        if "fps" in entry:
            name = entry["config"]
            anchor[f"ratio_fps_{name}"] = round(number(entry, "fps") * per_frame, 2)
            anchor[f"ratio_faces_only_fps_{name}"] = round(
                number(entry, "faces_only_fps") * per_frame, 2
            )
    return anchor


# Report --------------------------------------------------------------------------------------


def accuracy_rows(accuracy: dict[str, dict[str, object]]) -> list[str]:
    rows = []
    for name, variants in accuracy.items():
        for variant, result in variants.items():
            if not isinstance(result, dict):
                rows.append(f"{name:<22} {variant}: {result}")
                continue
            recall, blurred = number(result, "recall"), number(result, "mean_blurred_fraction")
            target = result["recall_target"]
            mark = "" if target is None else verdict(recall >= number(result, "recall_target"))
            rows.append(
                f"{name:<22} {variant:<8} recall {recall:.3f} (>= {target}) {mark:<4} "
                f"blurred {blurred:.3f} (<= {BLURRED_TARGET}) {verdict(blurred <= BLURRED_TARGET)}"
            )
    return rows


def speed_rows(speed: list[dict[str, object]], anchor: object) -> list[str]:
    rows = []
    for entry in speed:
        if "fps" not in entry:
            rows.append(f"{entry['config']:<16} failed")
            continue
        fps, rss = number(entry, "fps"), number(entry, "peak_rss_mib")
        rows.append(
            f"{entry['config']:<16} {entry['median_s']:.3f} s/frame {fps:5.2f} fps "
            f"(>= {FPS_TARGET}) {verdict(fps >= FPS_TARGET):<4} peak {rss:6.0f} MiB "
            f"(<= {RSS_TARGET_MIB}) {verdict(rss <= RSS_TARGET_MIB):<4} "
            f"faces only {entry['faces_only_median_s']:.3f} s"
        )
    if isinstance(anchor, dict) and "fps" in anchor:
        rows.append(
            f"{'deface (anchor)':<16} {anchor['per_frame_s']:.3f} s/frame {anchor['fps']:5.2f} fps "
            f"faces only, start-up {anchor['startup_s']} s"
        )
    return rows


def print_table(report: dict[str, object]) -> None:
    accuracy = report["accuracy"]
    assert isinstance(accuracy, dict)
    speed = report["speed"]
    assert isinstance(speed, list)
    for row in [*accuracy_rows(accuracy), *speed_rows(speed, report.get("anchor"))]:
        print(row)


# Command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "privacy"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--speed-worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--calibration", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("frame_paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_bench(args: argparse.Namespace) -> dict[str, object]:
    """Accuracy in this process, speed in one child process per configuration, then the anchor."""
    accuracy = {}
    for prepared in (False, True):
        anonymizer = load_anonymizer(prepared=prepared)
        suffix = "+prepared" if prepared else ""
        accuracy.update(
            {spec.folder + suffix: evaluate_set(anonymizer, args.data, spec) for spec in EVAL_SETS}
        )
    accuracy_rss = round(peak_rss_mib(), 1)
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmp:
        scratch = Path(tmp)
        frames, calibration, drive = render_frames(scratch, args.frames)
        speed = [run_speed_worker(config, frames, calibration) for config in CONFIGS]
        anchor = (
            {"skipped": "--skip-anchor"}
            if args.skip_anchor
            else measure_anchor(frames, scratch, speed)
        )
    return {
        "cpu_count": os.cpu_count(),
        "data": str(args.data),
        "accuracy": accuracy,
        "accuracy_process_peak_rss_mib": accuracy_rss,
        "drive": drive,
        "speed": speed,
        "anchor": anchor,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_onnxruntime()
    if args.speed_worker:
        print(json.dumps(measure_speed(args.speed_worker, args.frame_paths, args.calibration)))
        return
    report = run_bench(args)
    text = json.dumps(report, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)
    print_table(report)


if __name__ == "__main__":
    main()
