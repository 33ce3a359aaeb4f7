"""The demo's ingest stage: each virtual driver's spool is uploaded, as the dashcam would upload it,
to an embedded ingest API, and real workers validate and audit every keyframe into the catalog."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from edge.client import IngestClient
from edge.identity import Identity, create_identity, load_identity
from edge.spool import Spool
from edge.upload import upload_spool
from ingest.api.services import ApiServices
from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.ops import frames_by_state, quarantine_counts
from ingest.queues import AUDIT_QUEUE, INGEST_QUEUE, MATCH_QUEUE, create_celery_app
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from ingest.uploads import LocalUploadSigner
from mapbuilder.catalog import FrameMatch, store_network
from mapbuilder.roads import read_network
from rewards.demo import close_demo_epoch
from roadswarm import __version__
from roadswarm.api_server import ApiServer, free_port
from roadswarm.errors import ServiceError
from roadswarm.ingest_app import full_app
from roadswarm.sim.world import default_osm_path
from roadswarm.stack import ingest_worker

SETTLE_TIMEOUT_S = 900
POLL_S = 0.5


def catalog_url(workdir: Path) -> str:
    """The demo's SQLite catalog."""
    return f"sqlite:///{workdir / 'catalog.sqlite3'}"


def _identity(folder: Path) -> Identity:
    return load_identity(folder) if (folder / "device.key").exists() else create_identity(folder)


@contextlib.contextmanager
def ingest_stack(workdir: Path, store_root: Path, broker_url: str) -> Iterator[tuple[str, Catalog]]:
    """The ingest API on a loopback port, the world's roads in the catalog, and a worker on the
    `ingest`, `audit` and `match` queues."""
    catalog = Catalog.connect(catalog_url(workdir))
    store_network(catalog, read_network(default_osm_path()), now=utcnow())
    url = f"http://127.0.0.1:{free_port()}"
    settings = IngestSettings(upload_secret=secrets.token_hex(16))
    app = create_celery_app(broker_url)
    services = ApiServices(
        catalog,
        LocalObjectStore(store_root),
        LocalUploadSigner(settings.upload_secret, url),
        settings,
        app,
    )
    worker = ingest_worker(
        broker_url=broker_url,
        database_url=catalog_url(workdir),
        store_dir=store_root,
        workdir=workdir / "logs",
        queues=[INGEST_QUEUE, AUDIT_QUEUE, MATCH_QUEUE],
        name="demo-ingest",
    )
    port = int(url.rsplit(":", 1)[1])
    with worker, ApiServer(full_app(services), port=port):
        try:
            yield url, catalog
        finally:
            app.close()
            catalog.dispose()


def upload_drives(workdir: Path, api_url: str, drives: list[dict[str, Any]]) -> None:
    """Upload every driver's spool with its own device identity."""
    for drive in drives:
        identity = _identity(workdir / "identities" / drive["device"])
        client = IngestClient(api_url, identity)
        try:
            with Spool(workdir / "spools" / drive["device"]) as spool:
                report = upload_spool(spool, client)
        finally:
            client.close()
        if report.retry_later:
            msg = f"the demo's ingest API refused or dropped uploads: {report.retry_later[-1]}"
            raise ServiceError(msg)
        drive["device_id"] = identity.device_id
        drive["uploaded"] = report.frames_uploaded + report.frames_already_there


def _matches(catalog: Catalog) -> tuple[int, int, list[str]]:
    """Accepted frames with a match, those on a segment, and the distinct segments."""
    with catalog.session() as session:
        rows = session.execute(
            select(FrameMatch.segment_id)
            .join(Frame, Frame.frame_id == FrameMatch.frame_id)
            .where(Frame.state == FrameState.ACCEPTED)
        ).all()
    segments = [segment for (segment,) in rows if segment is not None]
    return len(rows), len(segments), sorted(set(segments))


def wait_until_settled(catalog: Catalog, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, Any]:
    """Wait until every frame is accepted (and matched) or quarantined; what the catalog holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = frames_by_state(catalog)
        matched, on_segment, segments = _matches(catalog)
        if states["received"] + states["validated"] == 0 and matched == states["accepted"]:
            return {
                "frames": states,
                "quarantined_by_reason": quarantine_counts(catalog),
                "frames_matched": on_segment,
                "matched_segment_ids": segments,
            }
        if time.monotonic() > deadline:
            msg = f"ingest did not finish in {timeout_s:.0f} s ({states}): see the demo-ingest log"
            raise ServiceError(msg)
        time.sleep(POLL_S)


def ingest_drives(
    workdir: Path, store_root: Path, broker_url: str, drives: list[dict[str, Any]]
) -> dict[str, Any]:
    """Upload, validate and audit every spooled keyframe; what the catalog holds afterwards."""
    with ingest_stack(workdir, store_root, broker_url) as (url, catalog):
        upload_drives(workdir, url, drives)
        return wait_until_settled(catalog)


def reward_drives(workdir: Path) -> dict[str, Any]:
    """Close the demo's epoch over its accepted, matched frames, with proofs for every driver."""
    catalog = Catalog.connect(catalog_url(workdir), migrate_schema=False)
    try:
        return close_demo_epoch(catalog, workdir, now=utcnow(), code_version=__version__)
    finally:
        catalog.dispose()
