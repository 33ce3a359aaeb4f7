"""The ingest API served on loopback: registration, upload tickets, uploads and commits, and every
refusal the issue names (replays, forgeries, keys outside the prefix, wrong bytes)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ingest.catalog import Frame, FrameState, Quarantine
from ingest.db import Catalog
from ingest.protocol import UploadItem, UploadRequest, public_key_hex, registration_proof
from ingest.queues import INGEST_QUEUE, create_celery_app
from ingest.settings import IngestSettings
from tests.ingest_helpers import (
    UPLOAD_SECRET,
    FakeDevice,
    Harness,
    frame_id,
    make_jpeg,
    require_redis,
    served_api,
)

NOTIFY_BROKER = "redis://127.0.0.1:6379/10"


def _tickets(api: Harness, device: FakeDevice, frames: list[bytes]) -> list[dict[str, object]]:
    items = [UploadItem(frame_id=frame_id(f), size_bytes=len(f)) for f in frames]
    body = UploadRequest(frames=items).model_dump_json().encode()
    answer = api.signed_post(device, "/v1/uploads", body)
    assert answer.status_code == 200, answer.text
    tickets: list[dict[str, object]] = answer.json()["tickets"]
    return tickets


def _post_ticket(ticket: dict[str, object], data: bytes, **changes: str) -> httpx.Response:
    fields = {**ticket["fields"], **changes}  # type: ignore[dict-item]
    return httpx.post(str(ticket["url"]), data=fields, files={"file": ("f.jpg", data)})


def test_registration_is_idempotent_and_needs_proof(api: Harness) -> None:
    """A key registers once (201), again harmlessly (200); a proof by another key is refused."""
    device = FakeDevice()
    assert api.register(device).status_code == 201
    again = api.register(device)
    assert again.status_code == 200
    assert again.json() == {"device_id": device.device_id, "created": False}
    impostor = FakeDevice()
    forged = {
        "public_key": public_key_hex(device.key.public_key()),
        "proof": registration_proof(impostor.key),
    }
    refused = api.http.post("/v1/devices", json=forged)
    assert refused.status_code == 401
    assert "proof" in refused.json()["message"]


def test_enrollment_token_is_required_when_configured(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """A closed deployment refuses devices without its enrolment token."""
    settings = IngestSettings(upload_secret=UPLOAD_SECRET, enrollment_token="fleet-secret")
    with served_api(sqlite_catalog, tmp_path / "store", settings=settings) as api:
        device = FakeDevice()
        refused = api.http.post("/v1/devices", json=device.registration())
        assert refused.status_code == 403
        body = {**device.registration(), "enrollment_token": "fleet-secret"}
        assert api.http.post("/v1/devices", json=body).status_code == 201


def test_upload_commit_and_recommit(api: Harness) -> None:
    """Uploaded frames commit into `received`; the same commit again is acknowledged, not redone."""
    device = FakeDevice()
    api.register(device)
    frames = [make_jpeg(i) for i in range(3)]
    api.upload(device, frames)
    signed = device.manifest(device.entries(frames))
    first = api.commit(device, signed)
    assert first.status_code == 201, first.text
    assert first.json()["already_committed"] is False
    again = api.commit(device, signed)
    assert again.status_code == 200
    assert again.json()["already_committed"] is True
    with api.catalog.session() as session:
        rows = session.scalars(select(Frame)).all()
        assert sorted(f.frame_id for f in rows) == sorted(frame_id(f) for f in frames)
        assert {f.state for f in rows} == {FrameState.RECEIVED}
        assert all(f.object_key.startswith(f"frames/{device.device_id}/") for f in rows)


def test_tickets_say_when_the_object_is_already_stored(api: Harness) -> None:
    """After a crash between upload and bookkeeping, the device is told not to send again."""
    device = FakeDevice()
    api.register(device)
    frames = [make_jpeg(1), make_jpeg(2)]
    api.upload(device, frames[:1])
    tickets = _tickets(api, device, frames)
    assert [t["already_uploaded"] for t in tickets] == [True, False]


def test_replayed_and_reordered_manifests_are_refused(api: Harness) -> None:
    """A lower counter, or the same counter with other contents, is a replay (409)."""
    device = FakeDevice()
    api.register(device)
    frames = [make_jpeg(i) for i in range(4)]
    api.upload(device, frames)
    assert (
        api.commit(device, device.manifest(device.entries(frames[:1]), counter=5)).status_code
        == 201
    )
    lower = api.commit(device, device.manifest(device.entries(frames[1:2]), counter=4))
    assert lower.status_code == 409
    assert "not above" in lower.json()["message"]
    reused = api.commit(device, device.manifest(device.entries(frames[2:3]), counter=5))
    assert reused.status_code == 409
    assert (
        api.commit(device, device.manifest(device.entries(frames[3:]), counter=6)).status_code
        == 201
    )


def test_forged_and_foreign_manifests_are_refused(api: Harness) -> None:
    """A tampered manifest, or one signed by another device, is refused and catalogs nothing."""
    device, other = FakeDevice(), FakeDevice()
    api.register(device)
    api.register(other)
    frames = [make_jpeg(7)]
    api.upload(device, frames)
    signed = device.manifest(device.entries(frames))
    tampered = signed.model_copy(
        update={"manifest": signed.manifest.model_copy(update={"counter": 99})}
    )
    assert api.commit(device, tampered).status_code == 401
    foreign = other.manifest(other.entries(frames))
    # `device` presents a manifest that `other` signed.
    answer = api.signed_post(device, "/v1/batches", foreign.model_dump_json().encode())
    assert answer.status_code == 401
    with api.catalog.session() as session:
        assert session.scalars(select(Frame)).all() == []


def test_missing_or_mismatched_objects_refuse_the_batch(api: Harness) -> None:
    """A frame not uploaded, or stored with other bytes, refuses the whole batch (422)."""
    device = FakeDevice()
    api.register(device)
    present, absent = make_jpeg(1), make_jpeg(2)
    api.upload(device, [present])
    answer = api.commit(device, device.manifest(device.entries([present, absent])))
    assert answer.status_code == 422
    assert f"{frame_id(absent)[:12]} is not uploaded" in answer.json()["message"]
    # Bytes swapped in the store behind the API's back: the store's own sha256 no longer matches.
    key = f"frames/{device.device_id}/{frame_id(present)}.jpg"
    api.store.put_bytes(key, make_jpeg(3))
    swapped = api.commit(device, device.manifest(device.entries([present])))
    assert swapped.status_code == 422
    with api.catalog.session() as session:
        assert session.scalars(select(Frame)).all() == []


def test_upload_tickets_cannot_be_bent(api: Harness) -> None:
    """Another key, other bytes, an edited size or an expired ticket are all refused (403)."""
    device = FakeDevice()
    api.register(device)
    data = make_jpeg(4)
    (ticket,) = _tickets(api, device, [data])
    other_key = f"frames/{'0' * 64}/{frame_id(data)}.jpg"
    assert _post_ticket(ticket, data, key=other_key).status_code == 403
    assert _post_ticket(ticket, make_jpeg(5)).status_code == 403
    assert _post_ticket(ticket, data, size=str(len(data) + 1)).status_code == 403
    assert _post_ticket(ticket, data, expires=str(int(time.time()) - 1)).status_code == 403
    assert not api.store.exists(str(ticket["key"]))
    assert _post_ticket(ticket, data).status_code == 201


def test_oversized_bodies_are_refused_before_reading(api: Harness) -> None:
    """Content-Length above the limit gets 413 on both the JSON API and the upload endpoint."""
    huge = b"x" * (5 * 1024 * 1024)
    assert api.http.post("/v1/devices", content=huge).status_code == 413
    assert api.http.post("/v1/objects", content=b"x" * 21_000_000).status_code == 413


def test_requests_must_be_signed_recently_by_a_registered_key(api: Harness) -> None:
    """Unknown devices, bad signatures and stale timestamps get 401 with a reason."""
    device = FakeDevice()
    body = b'{"frames": []}'
    assert api.signed_post(device, "/v1/uploads", body).status_code == 401
    api.register(device)
    stale = device.headers("POST", "/v1/uploads", body, at=time.time() - 3600)
    answer = api.http.post("/v1/uploads", content=body, headers=stale)
    assert answer.status_code == 401
    assert "clock" in answer.json()["message"]
    other_path = device.headers("POST", "/v1/batches", body)
    assert api.http.post("/v1/uploads", content=body, headers=other_path).status_code == 401


def test_revoked_device_cannot_upload(api: Harness) -> None:
    """After revocation every signed request of the device is refused (403)."""
    from ingest.catalog import utcnow
    from ingest.devices import revoke_device

    device = FakeDevice()
    api.register(device)
    revoke_device(api.catalog, device.device_id, now=utcnow())
    data = make_jpeg(1)
    items = UploadRequest(frames=[UploadItem(frame_id=frame_id(data), size_bytes=len(data))])
    answer = api.signed_post(device, "/v1/uploads", items.model_dump_json().encode())
    assert answer.status_code == 403
    assert "revoked" in answer.json()["message"]
    assert api.register(device).status_code == 403


def test_the_same_bytes_from_another_device_are_quarantined(api: Harness) -> None:
    """A second device committing a frame another committed first is recorded, not cataloged."""
    first, second = FakeDevice(), FakeDevice()
    api.register(first)
    api.register(second)
    data = make_jpeg(9)
    api.upload(first, [data])
    api.upload(second, [data])
    assert api.commit(first, first.manifest(first.entries([data]))).status_code == 201
    assert api.commit(second, second.manifest(second.entries([data]))).status_code == 201
    with api.catalog.session() as session:
        (frame,) = session.scalars(select(Frame)).all()
        assert frame.device_id == first.device_id
        (entry,) = session.scalars(select(Quarantine)).all()
        assert (entry.device_id, entry.reason) == (second.device_id, "duplicate_of_other_device")


def test_schema_errors_are_json_with_a_message(api: Harness) -> None:
    """A body that does not match the schema gets 422 JSON naming the field."""
    answer = api.http.post("/v1/devices", json={"public_key": "zz"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert "public_key" in body["message"]


def test_openapi_health_readiness_and_metrics(api: Harness) -> None:
    """The schema lists the routes; health answers; readiness names the missing broker."""
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/v1/devices", "/v1/uploads", "/v1/batches", "/healthz", "/readyz"} <= set(paths)
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"catalog": "ok", "store": "ok", "broker": "not configured"}
    metrics = api.http.get("/metrics").text
    assert 'roadswarm_frames{state="received"} 0.0' in metrics


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_notifications_need_the_token(api: Harness, headers: dict[str, str]) -> None:
    """MinIO's webhook is refused without the configured bearer token."""
    answer = api.http.post("/v1/notifications/minio", json={"Records": []}, headers=headers)
    assert answer.status_code == 401


def test_a_minio_notification_queues_a_waiting_frame(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """With the token, an ObjectCreated event for a committed frame sends one validation task."""
    require_redis()
    app = create_celery_app(NOTIFY_BROKER)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(INGEST_QUEUE)
    settings = IngestSettings(upload_secret=UPLOAD_SECRET, notify_token="minio-token")
    with served_api(sqlite_catalog, tmp_path / "store", settings=settings) as api:
        device = FakeDevice()
        api.register(device)
        data = make_jpeg(3)
        api.upload(device, [data])
        # Committed while the broker is unknown to the API: nothing queued by the commit itself.
        assert api.commit(device, device.manifest(device.entries([data]))).status_code == 201
        api.services.celery = app
        key = f"frames/{device.device_id}/{frame_id(data)}.jpg"
        event = {
            "Records": [{"eventName": "s3:ObjectCreated:Post", "s3": {"object": {"key": key}}}]
        }
        answer = api.http.post(
            "/v1/notifications/minio", json=event, headers={"Authorization": "Bearer minio-token"}
        )
        assert answer.json() == {"queued": 1}
    with app.connection_for_read() as connection:
        waiting = connection.default_channel.queue_declare(INGEST_QUEUE, passive=True).message_count
    assert waiting == 1
    app.close()
