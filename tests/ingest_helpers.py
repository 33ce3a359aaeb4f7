"""Builders for ingest tests: frames, devices that sign, manifests, catalogs, a served API."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from celery import Celery
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from edge.identity import Identity
from ingest.api.app import create_app
from ingest.api.services import ApiServices
from ingest.db import Catalog
from ingest.protocol import (
    BatchManifest,
    FrameEntry,
    SignedManifest,
    UploadItem,
    UploadRequest,
    public_key_hex,
    registration_proof,
    sign,
    sign_request,
)
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore, ObjectStore
from ingest.uploads import LocalUploadSigner
from roadswarm.api_server import ApiServer, free_port

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
UPLOAD_SECRET = "test-upload-secret-0123456789"
METRES_PER_DEGREE = 111_320.0


def make_jpeg(seed: int, width: int = 640, height: int = 480) -> bytes:
    """A JPEG of smooth random blobs: each seed gives a clearly different perceptual hash.

    Green stays above 120, so no blob looks like the magenta markers tests use as faces."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    coarse[:, :, 1] = 120 + coarse[:, :, 1] // 2
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def make_jpeg_bomb(seed: int) -> bytes:
    """A small JPEG whose header claims 60000 x 60000 pixels (its SOF0 size fields edited)."""
    data = bytearray(make_jpeg(seed, 64, 48))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(data)


def frame_id(data: bytes) -> str:
    """A frame's id: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeDevice:
    """A device key that signs its requests and manifests."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    counter: int = 0

    @property
    def identity(self) -> Identity:
        """The key as the edge app holds it."""
        return Identity(self.key)

    @property
    def device_id(self) -> str:
        """sha256 of the raw public key."""
        return self.identity.device_id

    def registration(self) -> dict[str, str]:
        """The body of a registration request."""
        return {
            "public_key": public_key_hex(self.key.public_key()),
            "proof": registration_proof(self.key),
        }

    def headers(
        self, method: str, path: str, body: bytes, *, at: float | None = None
    ) -> dict[str, str]:
        """Signed headers for one request."""
        stamp = int(time.time() if at is None else at)
        return {
            **sign_request(self.key, method, path, body, stamp),
            "content-type": "application/json",
        }

    def entries(
        self,
        frames: Sequence[bytes],
        *,
        sequence_id: str = "seq-1",
        start: datetime | None = None,
        first_index: int = 0,
        step_m: float = 4.0,
        speed_mps: float = 10.0,
    ) -> list[FrameEntry]:
        """Frame entries driving north from Helsinki at `speed_mps`, one per `step_m`."""
        begin = start or datetime.now(UTC) - timedelta(minutes=5)
        entries = []
        for offset, data in enumerate(frames):
            k = first_index + offset
            entries.append(
                FrameEntry(
                    frame_id=frame_id(data),
                    size_bytes=len(data),
                    capture_time=begin + timedelta(seconds=k * step_m / speed_mps),
                    lat=60.17 + k * step_m / METRES_PER_DEGREE,
                    lon=24.94,
                    heading_deg=0.0,
                    speed_mps=speed_mps,
                    sequence_id=sequence_id,
                    index=k,
                    model_versions={"face": "centerface@test", "plate": "platedet@test"},
                )
            )
        return entries

    def manifest(self, entries: list[FrameEntry], *, counter: int | None = None) -> SignedManifest:
        """The next (or a given) counter's signed manifest."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        batch = BatchManifest(
            device_id=self.device_id, counter=counter, created_at=datetime.now(UTC), frames=entries
        )
        return sign(batch, self.key)


@dataclass
class Harness:
    """A served ingest API over a catalog and a local store, with an HTTP client."""

    catalog: Catalog
    store: ObjectStore
    services: ApiServices
    url: str
    http: httpx.Client

    def register(self, device: FakeDevice) -> httpx.Response:
        """Register a device."""
        return self.http.post("/v1/devices", json=device.registration())

    def signed_post(self, device: FakeDevice, path: str, body: bytes) -> httpx.Response:
        """POST a body signed by `device`."""
        return self.http.post(path, content=body, headers=device.headers("POST", path, body))

    def upload(self, device: FakeDevice, frames: Sequence[bytes]) -> None:
        """Ask for tickets and upload every frame through them."""
        items = [UploadItem(frame_id=frame_id(f), size_bytes=len(f)) for f in frames]
        body = UploadRequest(frames=items).model_dump_json().encode()
        answer = self.signed_post(device, "/v1/uploads", body)
        assert answer.status_code == 200, answer.text
        for ticket, data in zip(answer.json()["tickets"], frames, strict=True):
            sent = httpx.post(ticket["url"], data=ticket["fields"], files={"file": ("f.jpg", data)})
            assert sent.status_code == 201, sent.text

    def commit(self, device: FakeDevice, signed: SignedManifest) -> httpx.Response:
        """Commit a signed manifest."""
        return self.signed_post(device, "/v1/batches", signed.model_dump_json().encode())


@contextmanager
def served_api(
    catalog: Catalog,
    store_dir: Path,
    *,
    settings: IngestSettings | None = None,
    celery: Celery | None = None,
    port: int | None = None,
    public_url: str | None = None,
) -> Iterator[Harness]:
    """The ingest API on a loopback port (default: a free one), over `catalog` and a local store
    in `store_dir`; its upload forms point at `public_url` (default: itself), e.g. a proxy."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    chosen = settings or IngestSettings(upload_secret=UPLOAD_SECRET)
    store = LocalObjectStore(store_dir)
    services = ApiServices(
        catalog,
        store,
        LocalUploadSigner(chosen.upload_secret, public_url or url),
        chosen,
        celery,
    )
    with ApiServer(create_app(services), port=port), httpx.Client(base_url=url, timeout=30) as http:
        yield Harness(catalog, store, services, url, http)


def require_service(host: str, port: int, what: str) -> None:
    """Skip (or fail, when services are required) when nothing listens on `host:port`."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
            pytest.fail(f"{what} on {host}:{port} is required: {exc}")
        pytest.skip(f"no {what} on {host}:{port}")


def require_redis() -> None:
    """Redis on 127.0.0.1:6379, or skip."""
    require_service("127.0.0.1", 6379, "Redis")


def require_postgres() -> None:
    """Skip (or fail, when services are required) without a PostgreSQL on 127.0.0.1:5432."""
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required: {exc}")
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; its SQLAlchemy URL."""
    import psycopg

    require_postgres()
    name = f"roadswarm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def catalog_at(kind: str, folder: Path) -> Iterator[Catalog]:
    """A migrated catalog on SQLite in `folder`, or on a fresh PostgreSQL database."""
    if kind == "sqlite":
        catalog = Catalog.connect(f"sqlite:///{folder / 'catalog.sqlite3'}")
        try:
            yield catalog
        finally:
            catalog.dispose()
        return
    with postgres_database() as url:
        catalog = Catalog.connect(url)
        try:
            yield catalog
        finally:
            catalog.dispose()
