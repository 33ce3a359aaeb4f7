"""Imagery tiles from catalog frames: the same dirty z21 blocks built by 1, then by 2 processes.

1. The Helsinki world and a `--minutes` drive at `--resolution` (as `bench_tiles`, made once in
   `--workdir`); its keyframes every 4 m of true travel become accepted catalog frames (SQLite,
   JPEGs in a local object store) with the drive's camera, matched by the real matcher and posed
   by `mapbuilder.tiles.posing` (true positions: no GNSS error here; refined, as the workers
   pose; posing is not timed).
2. Each run marks every z21 tile dirty and hands the dirty blocks to a pool of N processes, one
   block at a time (as Celery workers with prefetch 1 take them), each running the task's plain
   function `build_block` (read frames, stitch, encode WebP, write the store, record the catalog).
   Two processes share decoded frames in a folder under /dev/shm, as a worker's pool does
   (`mapbuilder.tile_tasks.share_decoded_frames`; `--no-share`: each decodes its own); one
   process has nothing to share with, as a worker of concurrency 1 shares nothing.
   The anchor is the same blocks built by one process, in the same run.
3. Frames per second = keyframes / wall seconds of the run (pool start-up excluded), per process
   = that / N; the 1 -> 2 ratio is the scaling. Median of `--repeats` runs of each. Each process
   runs OpenCV on one thread; the CPU seconds of the builds are reported too (keyframes per
   CPU-second: what one core would do if nothing else ran on it).

Targets (issue 7): >= 20 frames/s stitched per core at z21; 1 -> 2 processes >= 1.7x. Run it on
a quiet machine: other load on the cores shows up directly in both figures.

    python -m bench.bench_tiles_scaling [--minutes 1] [--resolution 1920x1080] [--repeats 3]
        [--osm FILE] [--workdir DIR] [--json-out FILE] [--no-share]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from bench._common import verdict
from bench.bench_tiles import DRIVE_SEED, prepare
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.settings import TileSettings
from mapbuilder.tile_tasks import SHARED_FRAMES_ROOT
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.dirty import Block, dirty_blocks
from mapbuilder.tiles.pipeline import build_block
from mapbuilder.tiles.posing import mark_everything
from mapbuilder.tiles.shared_frames import remove_folder, worker_folder
from tests.tile_helpers import keyframes, pose_drive

FPS_TARGET = 20.0
SCALING_TARGET = 1.7
_worker: TileContext | None = None


def seed(workdir: Path, args: argparse.Namespace) -> tuple[str, Path, int]:
    """A fresh catalog and store holding the drive's keyframes, matched and posed."""
    world, drive_dir = prepare(args, workdir)
    folder = workdir / "scaling"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    url, store_dir = f"sqlite:///{folder / 'catalog.sqlite3'}", folder / "store"
    catalog = Catalog.connect(url)
    try:
        ctx = TileContext(catalog, LocalObjectStore(store_dir))
        _, update = pose_drive(ctx, world, keyframes(world, drive_dir), drive_dir)
    finally:
        catalog.dispose()
    return url, store_dir, update.posed


def _open(url: str, store_dir: str, shared_dir: str | None) -> None:
    """Pool initializer: this process's catalog and store, as a worker opens them after fork,
    and the folder its pool shares decoded frames in (None: a worker of one process has none)."""
    global _worker  # one context per pool process, as each Celery worker process has
    # One thread per process, as under a worker whose concurrency is the number of cores.
    cv2.setNumThreads(1)
    shared = Path(shared_dir) if shared_dir else None
    _worker = TileContext(
        Catalog.connect(url, migrate_schema=False),
        LocalObjectStore(Path(store_dir)),
        settings=TileSettings(shared_frames_dir=shared),
    )


def _build(block: Block) -> tuple[int, float, int]:
    """The task's plain function on one block; the tiles written, the CPU seconds it took and
    the process's peak RSS so far (KiB)."""
    assert _worker is not None
    started = time.process_time()
    written = build_block(_worker, IMAGERY, block).written
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return written, time.process_time() - started, peak_kib


@dataclass(frozen=True)
class Run:
    """One build of every block: wall and CPU seconds, tiles written, and the largest peak RSS
    of a pool process (MiB)."""

    seconds: float
    cpu_s: float
    tiles: int
    peak_rss_mib: float


def timed_run(url: str, store_dir: Path, processes: int, *, share: bool = True) -> Run:
    """Mark every z21 tile dirty and build the blocks with `processes` workers (sharing decoded
    frames when more than one, unless not to `share`)."""
    catalog = Catalog.connect(url, migrate_schema=False)
    try:
        ctx = TileContext(catalog, LocalObjectStore(store_dir))
        mark_everything(ctx)
        with catalog.session() as session:
            blocks = dirty_blocks(session, IMAGERY, 21, ctx.settings.block_tiles)
    finally:
        catalog.dispose()
    # Spawned, not forked: this process has threads (tqdm's monitor, OpenCV's and onnxruntime's
    # pools), and a child forked while one of them held a lock hangs in its initializer.
    context = multiprocessing.get_context("spawn")
    # As `share_decoded_frames` does for a worker of two processes or more: a fresh folder.
    shared = worker_folder(SHARED_FRAMES_ROOT, os.getpid()) if processes > 1 and share else None
    initargs = (url, str(store_dir), str(shared) if shared else None)
    try:
        with context.Pool(processes, initializer=_open, initargs=initargs) as pool:
            pool.map(abs, range(processes))  # every process started and initialised
            started = time.perf_counter()
            results = list(pool.imap_unordered(_build, blocks, chunksize=1))
            seconds = time.perf_counter() - started
    finally:
        if shared:
            remove_folder(shared)
    return Run(
        seconds,
        sum(cpu for _, cpu, _ in results),
        sum(written for written, _, _ in results),
        max(peak for _, _, peak in results) / 1024,
    )


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Seed once, then alternate 1- and 2-process runs `--repeats` times."""
    url, store_dir, frames = seed(workdir, args)
    seconds: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    peak: dict[int, float] = {1: 0.0, 2: 0.0}
    tiles = 0
    for _ in range(args.repeats):
        for processes in (1, 2):
            outcome = timed_run(url, store_dir, processes, share=not args.no_share)
            seconds[processes].append(outcome.seconds)
            cpu[processes].append(outcome.cpu_s)
            peak[processes] = max(peak[processes], outcome.peak_rss_mib)
            tiles = outcome.tiles
    fps = {n: frames / statistics.median(s) for n, s in seconds.items()}
    per_cpu_s = {n: frames / statistics.median(s) for n, s in cpu.items()}
    return {
        "keyframes": frames,
        "z21_tiles": tiles,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "seconds": {str(n): [round(v, 2) for v in s] for n, s in seconds.items()},
        "frames_per_s": {str(n): round(v, 1) for n, v in fps.items()},
        "frames_per_s_per_process": {str(n): round(v / n, 1) for n, v in fps.items()},
        "scaling_1_to_2": round(fps[2] / fps[1], 2),
        # Each repeat runs 1 then 2 processes back to back: the ratio within each pair shows how
        # much of the spread is the machine's (others' load comes and goes within minutes).
        "scaling_by_repeat": [round(a / b, 2) for a, b in zip(seconds[1], seconds[2], strict=True)],
        # What a core of our own would do: frames per CPU-second the builds used (others' load
        # on the machine stretches the wall time, not this).
        "frames_per_cpu_s": {str(n): round(v, 1) for n, v in per_cpu_s.items()},
        "peak_rss_mib_per_process": {str(n): round(v) for n, v in peak.items()},
    }


def main() -> None:
    """Run the measurement and print it against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--drive-seed", type=int, default=DRIVE_SEED, help="another route")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--osm", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument(
        "--no-share", action="store_true", help="2 processes decode their own frames"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-tiles-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = run(args, workdir)
    print(json.dumps(report, indent=2))
    one = report["frames_per_s_per_process"]["1"]
    ratio = report["scaling_1_to_2"]
    print(
        f"1 process: {one} frames/s (target >= {FPS_TARGET}: {verdict(one >= FPS_TARGET)}); "
        f"1 -> 2 processes: {ratio}x (target >= {SCALING_TARGET}: "
        f"{verdict(ratio >= SCALING_TARGET)}); {report['cpus']} CPUs, "
        f"load average {report['load_average_1min']}"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
