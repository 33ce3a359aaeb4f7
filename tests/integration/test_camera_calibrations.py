"""Camera calibrations travel with batches: the spool records a sequence's camera, the signed
manifest carries it, and the catalog keeps it with every frame. Manifests without one sign and
verify byte for byte as before the field existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from edge.identity import create_identity
from edge.spool import Spool
from ingest.catalog import Camera, Frame, utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import register_device
from ingest.protocol import (
    BatchManifest,
    CameraCalibration,
    Registration,
    frame_object_key,
    public_key_hex,
    registration_proof,
    verify,
)
from ingest.storage import LocalObjectStore
from tests.edge_records import record_for
from tests.ingest_helpers import FakeDevice, make_jpeg

SIM_CALIBRATION = {  # what `roadswarm sim drive` writes: extra fields are ignored
    "width_px": 1280,
    "height_px": 720,
    "horizontal_fov_deg": 100.0,
    "mount_height_m": 1.4,
    "pitch_deg": 6.0,
    "roll_deg": 0.0,
    "distortion": [0.0] * 5,
    "camera_matrix": [[537.0, 0.0, 640.0], [0.0, 537.0, 360.0], [0.0, 0.0, 1.0]],
    "dist_coeffs": [0.0] * 5,
    "model": "pinhole",
}


def test_manifests_without_a_camera_sign_the_old_bytes() -> None:
    """No `cameras` and no `camera_id` in the signed bytes while they are empty."""
    device = FakeDevice()
    signed = device.manifest(device.entries([make_jpeg(1)]))
    old_form = signed.manifest.model_dump(mode="json")
    del old_form["cameras"]
    for frame in old_form["frames"]:
        del frame["camera_id"]
        del frame["travelled_m"]  # added later still (the device's odometry), left out alike
    expected = json.dumps(
        old_form, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()
    assert signed.manifest.canonical() == expected
    verify(signed, device.key.public_key())


def test_cameras_must_be_keyed_by_their_id_and_named_ones_present() -> None:
    """A camera under another key, or a frame naming an absent camera, is refused."""
    camera = CameraCalibration.model_validate(SIM_CALIBRATION)
    device = FakeDevice()
    (entry,) = device.entries([make_jpeg(1)])
    base = {"device_id": device.device_id, "counter": 1, "created_at": utcnow().isoformat()}
    with pytest.raises(ValidationError, match="keyed by another id"):
        BatchManifest.model_validate({**base, "frames": [entry], "cameras": {"0" * 64: camera}})
    named = entry.model_copy(update={"camera_id": camera.camera_id()})
    with pytest.raises(ValidationError, match="the manifest lacks"):
        BatchManifest.model_validate({**base, "frames": [named]})
    with pytest.raises(ValidationError):
        CameraCalibration.model_validate({**SIM_CALIBRATION, "mount_height_m": 40})


def test_a_sequences_camera_reaches_the_catalog(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """Sealed with its calibration, committed, stored once, and named by every frame."""
    identity = create_identity(tmp_path / "identity")
    camera = CameraCalibration.model_validate(SIM_CALIBRATION)
    frames = [make_jpeg(i) for i in range(3)]
    store = LocalObjectStore(tmp_path / "store")
    with Spool(tmp_path / "spool") as spool:
        assert spool.set_sequence_camera("drive", camera) == camera.camera_id()
        for index, data in enumerate(frames):
            spool.add(record_for(data, "drive", index), data)
            store.put_bytes(
                frame_object_key(identity.device_id, record_for(data, "drive", index).frame_id),
                data,
            )
        signed = spool.seal_batch(identity)
    assert signed is not None
    assert set(signed.manifest.cameras) == {camera.camera_id()}
    assert {f.camera_id for f in signed.manifest.frames} == {camera.camera_id()}
    verify(signed, identity.public_key)
    registration = Registration(
        public_key=public_key_hex(identity.public_key),
        proof=registration_proof(identity.private_key),
    )
    info, _ = register_device(sqlite_catalog, registration, now=utcnow())
    commit_batch(sqlite_catalog, store, info, signed, utcnow())
    with sqlite_catalog.session() as session:
        (stored,) = session.scalars(select(Camera)).all()
        assert CameraCalibration.model_validate(stored.calibration) == camera
        assert {f.camera_id for f in session.scalars(select(Frame))} == {camera.camera_id()}
