"""Keys reach nothing outside their scope: a device's key only its own prefix, frames, counter and
earnings; a consumer key only published imagery and its own usage; neither opens the other API;
an image URL opens one frame's image, and consumer answers name no device and no object key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ingest.api.services import ApiServices
from ingest.protocol import UploadItem, UploadRequest, frame_object_key
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from ingest.uploads import LocalUploadSigner
from roadswarm.api_server import ApiServer, free_port
from roadswarm.ingest_app import full_app
from tests.ingest_helpers import UPLOAD_SECRET, FakeDevice, Harness, catalog_at, frame_id, make_jpeg
from tests.rewards_helpers import fixed_device
from tests.serve_helpers import MapApi, seed_frames, served_map_api


@dataclass
class Both:
    """The device API and the consumer API over one catalog and store, and two devices."""

    ingest: Harness
    maps: MapApi
    alice: FakeDevice
    bob: FakeDevice
    alice_frame: bytes


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    """Alice has a committed frame; Bob is registered; the consumer API publishes seeded frames."""
    folder: Path = tmp_path_factory.mktemp("scopes")
    with catalog_at("sqlite", folder) as catalog:
        store = LocalObjectStore(folder / "store")
        seed_frames(catalog, store, 3)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = IngestSettings(upload_secret=UPLOAD_SECRET)
        services = ApiServices(
            catalog, store, LocalUploadSigner(UPLOAD_SECRET, url), settings, None
        )
        with (
            ApiServer(full_app(services), port=port),
            httpx.Client(base_url=url, timeout=30) as http,
            served_map_api(catalog, store) as maps,
        ):
            ingest = Harness(catalog, store, services, url, http)
            alice, bob = FakeDevice(), FakeDevice()
            for device in (alice, bob):
                assert ingest.register(device).status_code == 201
            data = make_jpeg(77)
            ingest.upload(alice, [data])
            assert ingest.commit(alice, alice.manifest(alice.entries([data]))).status_code == 201
            yield Both(ingest, maps, alice, bob, data)


def _tickets(both: Both, device: FakeDevice, data: bytes) -> list[dict[str, object]]:
    body = UploadRequest(frames=[UploadItem(frame_id=frame_id(data), size_bytes=len(data))])
    answer = both.ingest.signed_post(device, "/v1/uploads", body.model_dump_json().encode())
    assert answer.status_code == 200, answer.text
    tickets: list[dict[str, object]] = answer.json()["tickets"]
    return tickets


def test_a_device_writes_only_into_its_own_prefix(both: Both) -> None:
    """Bob asking for Alice's frame gets a ticket for his own prefix, and is not told that Alice
    stored it (no probing of other devices' uploads)."""
    [ticket] = _tickets(both, both.bob, both.alice_frame)
    assert ticket["key"] == frame_object_key(both.bob.device_id, frame_id(both.alice_frame))
    assert ticket["already_uploaded"] is False


def test_a_device_cannot_commit_what_another_uploaded(both: Both) -> None:
    """Bob's manifest listing Alice's uploaded frame is refused: his prefix does not hold it."""
    answer = both.ingest.commit(both.bob, both.bob.manifest(both.bob.entries([both.alice_frame])))
    assert answer.status_code == 422 and "is not uploaded" in answer.json()["message"]


@pytest.mark.parametrize("path", ["/v1/devices/me", "/v1/devices/me/earnings"])
def test_a_device_sees_only_itself(both: Both, path: str) -> None:
    """Bob's status and earnings are Bob's: Alice's id and counter never appear."""
    headers = both.bob.headers("GET", path, b"")
    answer = both.ingest.http.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["device_id"] == both.bob.device_id
    assert both.alice.device_id not in answer.text


def test_a_signed_request_cannot_be_claimed_by_another_device(both: Both) -> None:
    """Alice's signature with Bob's name on it is refused."""
    headers = both.alice.headers("GET", "/v1/devices/me", b"")
    headers["X-Roadswarm-Device"] = both.bob.device_id
    answer = both.ingest.http.get("/v1/devices/me", headers=headers)
    assert answer.status_code == 401


def test_neither_kind_of_key_opens_the_other_api(both: Both) -> None:
    """A consumer key is no device credential, and a device's signed headers are no API key."""
    as_device = both.ingest.http.get("/v1/devices/me", headers=both.maps.keyed())
    assert as_device.status_code == 401
    signed = both.alice.headers("GET", "/v1/account/usage", b"")
    as_consumer = both.maps.http.get("/v1/account/usage", headers=signed)
    assert as_consumer.status_code == 401


def test_a_consumer_key_gets_published_frames_only(both: Both) -> None:
    """Alice's frame is committed but not yet validated or audited: not there for consumers."""
    answer = both.maps.http.get(
        f"/v1/frames/{frame_id(both.alice_frame)}", headers=both.maps.keyed()
    )
    assert answer.status_code == 404


def test_consumer_answers_name_no_device_and_no_object_key(both: Both) -> None:
    """Published frames come without the device that took them or where they are stored."""
    query = {
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[24.93, 60.16], [24.95, 60.16], [24.95, 60.18], [24.93, 60.18], [24.93, 60.16]]
            ],
        },
        "start": "2020-01-01T00:00:00Z",
        "end": "2100-01-01T00:00:00Z",
    }
    answer = both.maps.http.post("/v1/imagery/query", json=query, headers=both.maps.keyed())
    assert answer.status_code == 200, answer.text
    frames = answer.json()["frames"]
    assert frames and all(set(f) >= {"frame_id", "image_url"} for f in frames)
    seeded_by = fixed_device(7).device_id  # the device `seed_frames` records
    assert seeded_by not in answer.text and "device" not in answer.text
    assert not any("object_key" in f for f in frames)


def test_a_key_sees_only_its_own_usage(both: Both) -> None:
    """Another key's usage is never in this key's answer."""
    other = both.maps.new_key("other")
    both.maps.http.get(
        "/v1/frames.geojson",
        params={"bbox": "24.93,60.16,24.95,60.18"},
        headers=both.maps.keyed(other),
    )
    mine = both.maps.http.get("/v1/account/usage", headers=both.maps.keyed()).json()
    theirs = both.maps.http.get("/v1/account/usage", headers=both.maps.keyed(other)).json()
    assert (
        mine["key_id"] != theirs["key_id"] and theirs["name"] == "other" and mine["name"] != "other"
    )
