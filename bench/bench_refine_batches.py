"""Pose refinement of a drive that arrives in batches, as a device uploading while it drives
sends it: each batch makes the pipeline refine the whole sequence again.

1. The Helsinki world and a `--minutes` drive at `--resolution` (as `bench_tiles`, made once in
   `--workdir`); its keyframes every 4 m go into a SQLite catalog and a local store
   `--batches` batches at a time, each matched by the real matcher and posed by
   `posing.update_poses`, as the `tiles.poses` task does.
2. Run A keeps one `TileContext` for all batches, as one worker process does, so registrations
   of earlier batches are looked up (`constraints.RegistrationMemo`); the anchor run B makes a
   fresh context per batch, as when every batch lands on another worker process (and as before
   the memo). Both must store the same poses.
3. Reported: refinement seconds per batch and in all, the ratio B / A, and the frames
   registered (pairs) per run.

    python -m bench.bench_refine_batches [--minutes 3] [--batches 6] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.bench_tiles import DRIVE_SEED, prepare
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.tiles import constraints
from mapbuilder.tiles.catalog import FramePoseRow
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.posing import update_poses
from mapbuilder.tiles.register import register_pair
from tests.tile_helpers import (
    calibration_of,
    keyframes,
    match,
    seed_drive,
    store_world_roads,
)

DEVICE, SEQUENCE = "bench", "drive"


def batched_run(
    folder: Path, world: Any, frames: list[Any], drive_dir: Path, batches: int, keep: bool
) -> dict[str, Any]:
    """Seed and pose the drive batch by batch; `keep`: one context for every batch."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    catalog = Catalog.connect(f"sqlite:///{folder / 'catalog.sqlite3'}")
    store = LocalObjectStore(folder / "store")
    store_world_roads(catalog, world)
    kept = TileContext(catalog, store)
    size = -(-len(frames) // batches)
    seconds, pairs = [], 0
    register = register_pair

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal pairs
        pairs += 1
        return register(*args, **kwargs)

    setattr(constraints, "register_pair", counted)  # counted, then restored  # noqa: B010
    try:
        for start in range(0, len(frames), size):
            key = seed_drive(
                catalog,
                store,
                frames[start : start + size],
                device_id=DEVICE,
                sequence_id=SEQUENCE,
                camera=calibration_of(drive_dir),
                first_index=start,
            )
            match(catalog, [key])
            ctx = kept if keep else TileContext(catalog, store)
            began = time.perf_counter()
            update_poses(ctx, [key])
            seconds.append(time.perf_counter() - began)
        with catalog.session() as session:
            poses = {
                row.frame_id: (row.lon, row.lat, row.heading_deg)
                for row in session.scalars(select(FramePoseRow))
            }
    finally:
        setattr(constraints, "register_pair", register)  # noqa: B010
        catalog.dispose()
    return {"seconds": seconds, "pairs": pairs, "poses": poses}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Both runs on the same drive and batches; A first, then the anchor B."""
    world, drive_dir = prepare(args, workdir)
    frames = keyframes(world, drive_dir)
    results = {
        name: batched_run(workdir / name, world, frames, drive_dir, args.batches, keep=keep)
        for name, keep in (("memo", True), ("fresh", False))
    }
    memo, fresh = results["memo"], results["fresh"]
    return {
        "keyframes": len(frames),
        "batches": args.batches,
        "seconds_per_batch": {
            name: [round(s, 2) for s in r["seconds"]] for name, r in results.items()
        },
        "seconds": {name: round(sum(r["seconds"]), 2) for name, r in results.items()},
        "pairs_registered": {name: r["pairs"] for name, r in results.items()},
        "same_poses": memo["poses"] == fresh["poses"],
        "fresh_over_memo": round(sum(fresh["seconds"]) / sum(memo["seconds"]), 2),
    }


def main() -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--drive-seed", type=int, default=DRIVE_SEED, help="another route")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--osm", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-refine-batches-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = run(args, workdir)
    print(json.dumps(report, indent=2))
    print(
        f"{report['keyframes']} keyframes in {report['batches']} batches: refinement "
        f"{report['seconds']['memo']} s keeping registrations, {report['seconds']['fresh']} s "
        f"without ({report['fresh_over_memo']}x); same poses: {report['same_poses']}"
    )


if __name__ == "__main__":
    main()
