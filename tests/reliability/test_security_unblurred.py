"""An unblurred face never reaches a tile or an imagery answer. A drive whose device left a real
face unblurred in one keyframe goes through validation, the privacy audit with the real models,
map matching, posing and the tile build; the consumer API is then asked for that frame every
way it can be. While the audit cannot run, nothing of the drive is published at all (fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from ingest.audit import audit_frames
from ingest.catalog import Frame, FrameState, Quarantine, utcnow
from ingest.commit import commit_batch
from ingest.devices import register_device
from ingest.protocol import (
    BatchManifest,
    FrameEntry,
    Registration,
    SignedManifest,
    frame_object_key,
    sign,
)
from ingest.storage import LocalObjectStore
from ingest.validate import IngestContext, validate_frames
from mapbuilder.tiles.catalog import FramePoseRow
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.pipeline import build_dirty
from mapbuilder.tiles.posing import update_poses
from models.boxes import Detections
from models.scan import PrivacyScanner
from models.settings import DetectionSettings, ModelSettings
from roadswarm.sim.world import World
from tests.edge_devices import REPO_ROOT
from tests.ingest_helpers import FakeDevice, catalog_at
from tests.serve_helpers import MapApi, served_map_api
from tests.tile_helpers import Keyframe, calibration_of, keyframes, match, store_world_roads

FACES = REPO_ROOT.parent / "shared" / "data" / "privacy" / "faces" / "rbnr-set1"
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason="shared privacy data not present")
FRAMES, FACE_AT = 14, 6


def _with_face(frame: Keyframe) -> Keyframe:
    """The keyframe with a real photographed face (set1_01, enlarged) pasted above the road."""
    photo = cv2.imread(str(FACES / "set1_01.JPG"))
    assert photo is not None
    face = cv2.resize(photo[119:231, 364:481], None, fx=1.6, fy=1.6)
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    image[20 : 20 + face.shape[0], 250 : 250 + face.shape[1]] = face
    encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    return replace(frame, jpeg=encoded.tobytes())


class FailingScanner:
    """A privacy scanner that cannot run (a model that fails to load or crashes)."""

    def find(self, image: object, **_: object) -> tuple[Detections, Detections]:
        msg = "the face model crashed"
        raise RuntimeError(msg)


@dataclass
class Published:
    """A drive taken through the pipeline: the consumer API over it, and the tiles it built."""

    api: MapApi
    ids: list[str]
    tiles: dict[str, str]  # tile key -> sha256 of its bytes
    unaudited_answers: list[int]  # frame detail statuses while the audit could not run


def _manifest(device: FakeDevice, frames: list[Keyframe], drive: Path) -> SignedManifest:
    camera = calibration_of(drive)
    start = utcnow() - timedelta(minutes=10)
    entries = [
        FrameEntry(
            frame_id=frame.frame_id,
            size_bytes=len(frame.jpeg),
            capture_time=start + timedelta(seconds=frame.t_s),
            lat=frame.lat,
            lon=frame.lon,
            heading_deg=frame.heading_deg,
            speed_mps=10.0,
            sequence_id="drive",
            index=index,
            model_versions={"face": "none"},
            camera_id=camera.camera_id(),
        )
        for index, frame in enumerate(frames)
    ]
    batch = BatchManifest(
        device_id=device.device_id,
        counter=1,
        created_at=utcnow(),
        frames=entries,
        cameras={camera.camera_id(): camera},
    )
    return sign(batch, device.key)


def _ingest(api: MapApi, frames: list[Keyframe], drive: Path) -> tuple[list[str], list[int]]:
    """Commit and validate; audit with a scanner that fails (and ask the API for every frame
    meanwhile), then with the real models."""
    catalog, store = api.services.catalog, api.services.store
    device = FakeDevice()
    info, _ = register_device(catalog, Registration(**device.registration()), now=utcnow())
    for frame in frames:
        store.put_bytes(frame_object_key(device.device_id, frame.frame_id), frame.jpeg)
    ids = commit_batch(
        catalog, store, info, _manifest(device, frames, drive), utcnow()
    ).new_frame_ids
    ctx = IngestContext(catalog, store)
    validate_frames(ctx, ids)
    with pytest.raises(RuntimeError):
        audit_frames(ctx, FailingScanner(), ids)
    unaudited = [api.http.get(f"/v1/frames/{fid}", headers=api.keyed()).status_code for fid in ids]
    settings = DetectionSettings()
    scanner = PrivacyScanner(*PrivacyScanner.load_detectors(settings, ModelSettings()), settings)
    audit_frames(ctx, scanner, ids)
    match(catalog, [(device.device_id, "drive")])
    tiles = TileContext(catalog, store)
    update_poses(tiles, [(device.device_id, "drive")], refine=False)
    build_dirty(tiles)
    return ids, unaudited


@contextmanager
def published(
    folder: Path, frames: list[Keyframe], world: World, drive: Path
) -> Iterator[Published]:
    """`frames` through the pipeline over a fresh catalog, with the consumer API on it."""
    with catalog_at("sqlite", folder) as catalog:
        store_world_roads(catalog, world)
        store = LocalObjectStore(folder / "store")
        with served_map_api(catalog, store) as api:
            ids, unaudited = _ingest(api, frames, drive)
            tiles = {
                o.key: hashlib.sha256(store.get_bytes(o.key)).hexdigest()
                for o in store.list("tiles/imagery/")
            }
            yield Published(api, ids, tiles, unaudited)


@pytest.fixture(scope="module")
def drive_frames(grid_world: World, short_drive: Path) -> list[Keyframe]:
    """The short drive's first keyframes; one of them shows a face nobody blurred."""
    frames = keyframes(grid_world, short_drive)[:FRAMES]
    frames[FACE_AT] = _with_face(frames[FACE_AT])
    return frames


@pytest.fixture(scope="module")
def with_face(
    drive_frames: list[Keyframe],
    grid_world: World,
    short_drive: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Published]:
    """The drive, face included, through the pipeline."""
    with published(tmp_path_factory.mktemp("face"), drive_frames, grid_world, short_drive) as done:
        yield done


def test_nothing_is_published_while_the_audit_cannot_run(with_face: Published) -> None:
    """With the audit failing, every frame of the drive answers 404 (validated is not published)."""
    assert with_face.unaudited_answers == [404] * FRAMES


def test_the_audit_quarantines_the_face(with_face: Published, drive_frames: list[Keyframe]) -> None:
    """The real models find the face; every other frame is accepted or held for another reason."""
    face = drive_frames[FACE_AT].frame_id
    with with_face.api.services.catalog.session() as session:
        row = session.scalars(select(Quarantine).where(Quarantine.frame_id == face)).one()
        assert row.reason == "unblurred_face" and "face(s) visible" in row.detail
        accepted = session.scalars(
            select(Frame.frame_id).where(Frame.state == FrameState.ACCEPTED)
        ).all()
        posed = set(session.scalars(select(FramePoseRow.frame_id)))
    assert face not in accepted and len(accepted) >= FRAMES // 2
    assert face not in posed and posed <= set(accepted)


def test_the_imagery_api_never_shows_the_face(
    with_face: Published, drive_frames: list[Keyframe]
) -> None:
    """Not in a polygon query, not in the map's frame positions, not by id, and not even through
    an image URL signed with the server's own secret."""
    api, face = with_face.api, drive_frames[FACE_AT].frame_id
    lon = [f.lon for f in drive_frames]
    lat = [f.lat for f in drive_frames]
    box = [min(lon) - 0.001, min(lat) - 0.001, max(lon) + 0.001, max(lat) + 0.001]
    ring = [
        [box[0], box[1]],
        [box[2], box[1]],
        [box[2], box[3]],
        [box[0], box[3]],
        [box[0], box[1]],
    ]
    query = {
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "start": "2020-01-01T00:00:00Z",
        "end": "2100-01-01T00:00:00Z",
        "limit": 500,
    }
    shown = api.http.post("/v1/imagery/query", json=query, headers=api.keyed()).json()["frames"]
    positions = api.http.get(
        "/v1/frames.geojson", params={"bbox": ",".join(map(str, box))}, headers=api.keyed()
    ).json()
    assert shown and face not in {f["frame_id"] for f in shown}
    assert len(positions["features"]) == len(shown) and face not in {
        f["id"] for f in positions["features"]
    }
    assert api.http.get(f"/v1/frames/{face}", headers=api.keyed()).status_code == 404
    assert api.http.get(api.services.signer.sign(face).path).status_code == 404


def test_the_tiles_are_those_of_the_drive_without_the_face(
    with_face: Published,
    drive_frames: list[Keyframe],
    grid_world: World,
    short_drive: Path,
    tmp_path: Path,
) -> None:
    """Every imagery tile is byte for byte what the same drive builds with the face's frame never
    sent: the frame contributed no pixel."""
    without = [f for i, f in enumerate(drive_frames) if i != FACE_AT]
    with published(tmp_path, without, grid_world, short_drive) as reference:
        assert with_face.tiles and with_face.tiles == reference.tiles
