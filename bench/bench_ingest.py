"""Frames per second through validation and cataloging, with 1 and 2 worker processes on Redis and
PostgreSQL, and the latency from a batch's commit to its frames' validated catalog rows.

1. `--frames` 1920x1080 JPEGs (smooth blobs plus noise, about the size of real keyframes) from
   `--devices` devices, cached in `--workdir`, are put in a local object store; each device is
   registered in a fresh PostgreSQL database.
2. Throughput: a real `celery worker` on the `ingest` queue (concurrency 1, then 2) is started;
   every batch is committed (`commit_batch`, then queued exactly as the API does) as fast as
   possible; frames/s = frames / (last frame validated - first commit). Median of `--repeats`.
   Target: >= 150 frames/s with 2 processes, and 2 processes >= 1.7x one.
3. Latency: batches of 20 are committed at half the 2-process throughput; the p50 and p95 of
   (validated row's time - commit time) per frame.

The privacy audit (queue `audit`) is not part of this stage: its cost is that of the detectors
(see bench_privacy); its tasks are purged after each run. There is no external anchor for this
stage: the figures are reported against the issue's targets.

    python -m bench.bench_ingest [--frames 1200] [--devices 12] [--repeats 3]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/test]
        [--broker redis://127.0.0.1:6379/12] [--workdir DIR] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sqlalchemy import func, select

from bench._common import verdict
from ingest.api.services import ApiServices
from ingest.catalog import Frame, FrameState, utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import DeviceInfo, register_device
from ingest.protocol import (
    BatchManifest,
    FrameEntry,
    Registration,
    SignedManifest,
    device_id_for,
    frame_object_key,
    public_key_hex,
    registration_proof,
    sign,
)
from ingest.queues import ALL_QUEUES, INGEST_QUEUE, create_celery_app
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from ingest.uploads import LocalUploadSigner
from roadswarm.stack import ingest_worker

REPO = Path(__file__).resolve().parents[1]
BATCH_FRAMES = 50
LATENCY_BATCH_FRAMES = 20
FPS_TARGET = 150.0
SCALING_TARGET = 1.7
POLL_S = 0.05


@dataclass(frozen=True)
class Corpus:
    """Frames on disk, grouped by device."""

    folder: Path
    devices: list[Ed25519PrivateKey]
    frames: list[list[Path]]


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    coarse = (rng.random((9, 16, 3)) * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((1920, 1080), Image.Resampling.BICUBIC))
    noisy = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_corpus(folder: Path, frames: int, devices: int) -> Corpus:
    """Frames cached in `folder` (generating them once), split among fresh device keys."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(frames):
        path = folder / f"{index:05d}.jpg"
        if not path.exists():
            path.write_bytes(_jpeg(index))
        paths.append(path)
    per_device = [paths[i::devices] for i in range(devices)]
    return Corpus(folder, [Ed25519PrivateKey.generate() for _ in range(devices)], per_device)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for one run, dropped afterwards."""
    name = f"roadswarm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    host = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manifests(key: Ed25519PrivateKey, paths: list[Path], size: int) -> list[SignedManifest]:
    """Batches of one device driving north at 10 m/s, a frame every 4 m, 20 minutes ago."""
    device_id = device_id_for(key.public_key())
    start = datetime.now(UTC) - timedelta(minutes=20)
    entries = []
    for index, path in enumerate(paths):
        data = path.read_bytes()
        entries.append(
            FrameEntry(
                frame_id=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                capture_time=start + timedelta(seconds=index * 0.4),
                lat=60.17 + index * 4 / 111_320,
                lon=24.94,
                heading_deg=0.0,
                speed_mps=10.0,
                sequence_id=f"bench-{device_id[:8]}",
                index=index,
                model_versions={"face": "bench", "plate": "bench"},
            )
        )
    batches = [entries[i : i + size] for i in range(0, len(entries), size)]
    return [
        sign(BatchManifest(device_id=device_id, counter=n + 1, created_at=utcnow(), frames=b), key)
        for n, b in enumerate(batches)
    ]


@dataclass
class Stage:
    """A catalog, store and broker ready for one run, with its devices registered."""

    catalog: Catalog
    store: LocalObjectStore
    services: ApiServices
    devices: list[DeviceInfo]
    batches: list[tuple[DeviceInfo, SignedManifest]]


def prepare(corpus: Corpus, database_url: str, workdir: Path, broker: str, size: int) -> Stage:
    """Register the devices, upload every frame, and sign every batch (interleaved by device)."""
    catalog = Catalog.connect(database_url)
    store = LocalObjectStore(workdir / "store")
    app = create_celery_app(broker)
    settings = IngestSettings(upload_secret="bench-secret-0123456789")
    services = ApiServices(
        catalog, store, LocalUploadSigner(settings.upload_secret, "http://x"), settings, app
    )
    devices, per_device = [], []
    for key, paths in zip(corpus.devices, corpus.frames, strict=True):
        registration = Registration(
            public_key=public_key_hex(key.public_key()), proof=registration_proof(key)
        )
        info, _ = register_device(catalog, registration, now=utcnow())
        devices.append(info)
        for path in paths:
            data = path.read_bytes()
            store.put_bytes(
                frame_object_key(info.device_id, hashlib.sha256(data).hexdigest()), data
            )
        per_device.append([(info, m) for m in _manifests(key, paths, size)])
    batches = [pair for group in zip(*per_device, strict=False) for pair in group]
    return Stage(catalog, store, services, devices, batches)


def purge(broker: str) -> None:
    """Empty every queue (audit tasks nobody consumes here, leftovers of an aborted run)."""
    app = create_celery_app(broker)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ALL_QUEUES:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)
    app.close()


def validated(catalog: Catalog) -> int:
    """Frames past validation (validated, or quarantined by it)."""
    with catalog.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Frame).where(Frame.state != FrameState.RECEIVED)
            )
            or 0
        )


def commit(stage: Stage, device: DeviceInfo, signed: SignedManifest) -> None:
    """Commit a batch and queue its frames exactly as the API does."""
    committed = commit_batch(stage.catalog, stage.store, device, signed, utcnow())
    stage.services.queue_validation(committed.new_frame_ids)


@contextmanager
def worker(database_url: str, workdir: Path, broker: str, concurrency: int) -> Iterator[None]:
    """A real Celery worker on the `ingest` queue."""
    with ingest_worker(
        broker_url=broker,
        database_url=database_url,
        store_dir=workdir / "store",
        workdir=workdir / "worker",
        queues=[INGEST_QUEUE],
        concurrency=concurrency,
    ):
        yield


def cpu_ticks() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine (/proc/stat), to tell a saturated run."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class Throughput:
    """One run: frames per second, and how busy the machine's cores were meanwhile."""

    fps: float
    machine_busy: float


def throughput_run(
    corpus: Corpus, args: argparse.Namespace, concurrency: int, workdir: Path
) -> Throughput:
    """Frames per second from the first commit until every frame is validated."""
    purge(args.broker)
    total = sum(len(paths) for paths in corpus.frames)
    with fresh_database(args.pg_admin_url) as url:
        stage = prepare(corpus, url, workdir, args.broker, BATCH_FRAMES)
        with worker(url, workdir, args.broker, concurrency):
            busy0, all0 = cpu_ticks()
            started = time.perf_counter()
            for device, signed in stage.batches:
                commit(stage, device, signed)
            while validated(stage.catalog) < total:
                time.sleep(POLL_S)
            elapsed = time.perf_counter() - started
            busy1, all1 = cpu_ticks()
        stage.catalog.dispose()
    purge(args.broker)
    return Throughput(total / elapsed, (busy1 - busy0) / max(1, all1 - all0))


def latency_run(
    corpus: Corpus, args: argparse.Namespace, rate_fps: float, workdir: Path
) -> list[float]:
    """Seconds from commit to validated row, per frame, at a steady `rate_fps` with 2 processes."""
    purge(args.broker)
    with fresh_database(args.pg_admin_url) as url:
        stage = prepare(corpus, url, workdir, args.broker, LATENCY_BATCH_FRAMES)
        with worker(url, workdir, args.broker, 2):
            interval = LATENCY_BATCH_FRAMES / rate_fps
            next_at = time.perf_counter()
            for device, signed in stage.batches:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                commit(stage, device, signed)
                next_at += interval
            total = sum(len(paths) for paths in corpus.frames)
            while validated(stage.catalog) < total:
                time.sleep(POLL_S)
        with stage.catalog.session() as session:
            rows = session.execute(select(Frame.received_at, Frame.state_since)).all()
        stage.catalog.dispose()
    purge(args.broker)
    return sorted((done - received).total_seconds() for received, done in rows)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted `values` lie."""
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


def measure_throughput(
    corpus: Corpus, args: argparse.Namespace, workdir: Path
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Frames per second and machine busy share of every run, by worker processes."""
    fps: dict[int, list[float]] = {1: [], 2: []}
    busy: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for concurrency in (1, 2):
            run = throughput_run(corpus, args, concurrency, workdir / f"run-{repeat}-{concurrency}")
            fps[concurrency].append(run.fps)
            busy[concurrency].append(run.machine_busy)
            print(
                f"run {repeat + 1}, {concurrency} process(es): {run.fps:.1f} frames/s, "
                f"machine {run.machine_busy:.0%} busy ({os.cpu_count()} cores)"
            )
    return fps, busy


def main() -> None:
    """Run the benchmark and print the figures against their targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    corpus = make_corpus(workdir / "frames", args.frames, args.devices)
    sizes = [path.stat().st_size for paths in corpus.frames for path in paths]
    print(f"{len(sizes)} frames, median {statistics.median(sizes) / 1024:.0f} KiB, in {workdir}")
    fps, busy = measure_throughput(corpus, args, workdir)
    one, two = statistics.median(fps[1]), statistics.median(fps[2])
    latencies = latency_run(corpus, args, two / 2, workdir / "latency")
    report = {
        "frames": len(sizes),
        "median_frame_kib": round(statistics.median(sizes) / 1024, 1),
        "frames_per_s_1": round(one, 1),
        "frames_per_s_2": round(two, 1),
        "runs": {str(k): [round(v, 1) for v in vs] for k, vs in fps.items()},
        "scaling_1_to_2": round(two / one, 2),
        "machine_busy_1": round(statistics.median(busy[1]), 2),
        "machine_busy_2": round(statistics.median(busy[2]), 2),
        "cores": os.cpu_count(),
        "latency_rate_fps": round(two / 2, 1),
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p95_s": round(percentile(latencies, 0.95), 3),
    }
    print(
        f"validation + cataloging: 1 process {one:.1f} frames/s, 2 processes {two:.1f} frames/s "
        f"(target >= {FPS_TARGET:.0f}: {verdict(two >= FPS_TARGET)}, ratio {two / FPS_TARGET:.2f}); "
        f"scaling {two / one:.2f}x (target >= {SCALING_TARGET}: {verdict(two / one >= SCALING_TARGET)})"
    )
    print(
        f"commit -> validated row at {two / 2:.0f} frames/s: p50 {report['latency_p50_s']} s, "
        f"p95 {report['latency_p95_s']} s"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
