"""A device's spool through the served API into real Celery workers (validation and the privacy
audit with the real models), on Redis with PostgreSQL and on RabbitMQ with SQLite: every keyframe
ends in the catalog exactly once, in a terminal state, and a frame with a face never is accepted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import func, select

from edge.client import IngestClient
from edge.package import KeyframeRecord
from edge.spool import Spool
from edge.upload import upload_spool
from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from ingest.queues import ALL_QUEUES, AUDIT_QUEUE, INGEST_QUEUE, create_celery_app
from roadswarm.stack import WorkerProcess, ingest_worker
from tests.ingest_helpers import (
    METRES_PER_DEGREE,
    FakeDevice,
    catalog_at,
    frame_id,
    make_jpeg,
    require_service,
    served_api,
)

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
FACES = REPO_ROOT.parent / "shared" / "data" / "privacy" / "faces" / "rbnr-set1"
REDIS_URL = "redis://127.0.0.1:6379/11"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
SETTLE_TIMEOUT_S = 240


def _purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ALL_QUEUES:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


def _spool_keyframes(spool: Spool, frames: list[bytes]) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    for index, data in enumerate(frames):
        spool.add(
            KeyframeRecord(
                frame_id=frame_id(data),
                capture_time=(start + timedelta(seconds=index * 0.4)).isoformat(),
                lat=60.17 + index * 4 / METRES_PER_DEGREE,
                lon=24.94,
                altitude_m=12.0,
                heading_deg=0.0,
                speed_mps=10.0,
                hdop=0.9,
                sequence_id="drive-1",
                index=index,
                travelled_m=index * 4.0,
                source_frame=index * 12,
                model_versions={"face": "centerface@test", "plate": "platedet@test"},
            ),
            data,
        )


def _wait_until_settled(catalog: Catalog, expected: int) -> dict[str, int]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        with catalog.session() as session:
            rows = session.execute(select(Frame.state, func.count()).group_by(Frame.state)).all()
        counts = {state.value: n for state, n in rows}
        pending = counts.get("received", 0) + counts.get("validated", 0)
        if sum(counts.values()) == expected and pending == 0:
            return counts
        time.sleep(0.5)
    pytest.fail(f"frames did not settle in {SETTLE_TIMEOUT_S} s: {counts}")


@contextmanager
def _pipeline(catalog_url: str, broker: str, workdir: Path) -> Iterator[WorkerProcess]:
    with ingest_worker(
        broker_url=broker,
        database_url=catalog_url,
        store_dir=workdir / "store",
        workdir=workdir / "worker",
        queues=[INGEST_QUEUE, AUDIT_QUEUE],
    ) as worker:
        yield worker


def _face_photo() -> bytes | None:
    photos = sorted(FACES.glob("*.JPG"))
    return photos[0].read_bytes() if photos else None


@pytest.mark.parametrize(
    ("broker", "database"),
    [(REDIS_URL, "postgresql"), (RABBIT_URL, "sqlite")],
    ids=["redis", "rabbitmq"],
)
def test_a_spool_reaches_the_catalog_exactly_once(
    broker: str, database: str, tmp_path: Path
) -> None:
    """Upload, commit, validate and audit; a re-run uploads nothing; the face is quarantined."""
    require_service("127.0.0.1", 6379 if broker.startswith("redis") else 5672, broker.split(":")[0])
    frames = [make_jpeg(seed) for seed in range(12)]
    face = _face_photo()
    if face is not None:
        frames.append(face)
    app = create_celery_app(broker)
    _purge(app)
    with (
        catalog_at(database, tmp_path) as catalog,
        _pipeline(str(catalog.engine.url.render_as_string(hide_password=False)), broker, tmp_path),
        served_api(catalog, tmp_path / "store", celery=app) as api,
    ):
        device = FakeDevice()
        with Spool(tmp_path / "spool") as spool:
            _spool_keyframes(spool, frames)
            client = IngestClient(api.url, device.identity)
            report = upload_spool(spool, client, max_batch_frames=5)
            assert (report.batches_committed, report.frames_uploaded) == (3, len(frames))
            again = upload_spool(spool, client)
            assert (again.batches_sealed, again.frames_uploaded) == (0, 0)
            assert spool.status()["keyframes"] == {
                "ready": 0,
                "uploaded": 0,
                "committed": len(frames),
            }
            assert spool.integrity_problems() == []
            client.close()
        counts = _wait_until_settled(catalog, len(frames))
        assert counts.get("accepted", 0) == 12
        if face is not None:
            assert counts.get("quarantined", 0) == 1
            with catalog.session() as session:
                frame = session.get(Frame, frame_id(face))
                assert frame is not None and frame.state == FrameState.QUARANTINED
        viewer = IngestClient(api.url, device.identity)
        me = viewer.me()
        viewer.close()
        assert me["batches"] == 3 and me["frames"]["accepted"] == 12
    app.close()
