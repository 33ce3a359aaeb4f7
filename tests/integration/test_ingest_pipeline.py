"""The ingest stages as plain functions, on SQLite and on a real PostgreSQL: validation, the privacy
audit (with a stand-in scanner), quarantine and its release, the reconciler, notifications."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import select

from ingest.audit import audit_frames
from ingest.catalog import DeadLetter, Frame, FrameState, TaskRun, utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import DeviceInfo, register_device
from ingest.imagecheck import ImageFacts, hamming, inspect_image
from ingest.notifications import frames_to_queue
from ingest.protocol import FrameEntry, Registration, frame_object_key
from ingest.quarantine import ReleaseRefusedError, list_quarantine, release
from ingest.reconcile import reconcile
from ingest.settings import ValidationSettings
from ingest.storage import LocalObjectStore
from ingest.validate import IngestContext, validate_frames
from models.boxes import Detections
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg, make_jpeg_bomb
from tests.replay_edits import capture, replays, second_captures, textured_picture


class MarkerScanner:
    """Finds magenta squares as faces: the audit's logic without the models."""

    def find(
        self,
        image: NDArray[np.uint8],
        *,
        horizon: float | None = None,
        thresholds: tuple[float, float] | None = None,
    ) -> tuple[Detections, Detections]:
        """Magenta blobs are faces; there are never plates."""
        mask = cv2.inRange(image, (180, 0, 180), (255, 80, 255))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:count] if area > 50]
        found = np.array(boxes, np.float32).reshape(-1, 4)
        return Detections(found, np.full(len(found), 0.9, np.float32)), Detections.empty()


def _with_marker(seed: int) -> bytes:
    image = np.asarray(Image.open(io.BytesIO(make_jpeg(seed))).convert("RGB")).copy()
    image[100:160, 200:260] = (255, 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def ctx(catalog: Catalog, tmp_path: Path) -> IngestContext:
    """A pipeline context over the catalog and a local store."""
    return IngestContext(catalog, LocalObjectStore(tmp_path / "store"), ValidationSettings())


def _register(ctx: IngestContext, device: FakeDevice) -> DeviceInfo:
    info, _ = register_device(ctx.catalog, Registration(**device.registration()), now=utcnow())
    return info


def _commit(
    ctx: IngestContext,
    device: FakeDevice,
    frames: list[bytes],
    entries: list[FrameEntry] | None = None,
) -> list[str]:
    info = _register(ctx, device)
    for data in frames:
        ctx.store.put_bytes(frame_object_key(device.device_id, frame_id(data)), data)
    signed = device.manifest(entries or device.entries(frames))
    return commit_batch(ctx.catalog, ctx.store, info, signed, utcnow()).new_frame_ids


def _states(ctx: IngestContext) -> dict[str, FrameState]:
    with ctx.catalog.session() as session:
        return {f.frame_id: f.state for f in session.scalars(select(Frame))}


def _reasons(ctx: IngestContext) -> dict[str, str]:
    return {e.frame_id: e.reason for e in list_quarantine(ctx.catalog)}


def test_good_frames_are_validated_then_accepted(ctx: IngestContext) -> None:
    """Clean frames pass both stages; a second delivery of either task changes nothing."""
    device = FakeDevice()
    frames = [make_jpeg(i) for i in range(3)]
    ids = _commit(ctx, device, frames)
    result = validate_frames(ctx, ids)
    assert sorted(result.advanced) == sorted(ids) and result.quarantined == {}
    assert validate_frames(ctx, ids).advanced == []
    audited = audit_frames(ctx, MarkerScanner(), ids)
    assert sorted(audited.advanced) == sorted(ids)
    assert audit_frames(ctx, MarkerScanner(), ids).advanced == []
    assert set(_states(ctx).values()) == {FrameState.ACCEPTED}
    with ctx.catalog.session() as session:
        frame = session.get(Frame, ids[0])
        assert frame is not None and (frame.width, frame.height) == (640, 480)
        assert frame.phash is not None
        assert {run.stage for run in session.scalars(select(TaskRun))} == {"validate", "audit"}
    assert _reasons(ctx) == {}


def _truncated() -> bytes:
    return make_jpeg(20)[:4000]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated, "undecodable"),
        (_png, "not_jpeg"),
        (lambda: make_jpeg_bomb(21), "decompression_bomb"),
        (lambda: make_jpeg(22, 100, 80), "too_small"),
        (lambda: b"not an image at all", "undecodable"),
    ],
)
def test_bad_images_are_quarantined_with_their_reason(
    ctx: IngestContext, make: object, reason: str
) -> None:
    """Each kind of bad object gets its own reason; the good frame beside it is unaffected."""
    bad = make()  # type: ignore[operator]
    good = make_jpeg(1)
    ids = _commit(ctx, FakeDevice(), [good, bad])
    result = validate_frames(ctx, ids)
    assert result.advanced == [frame_id(good)]
    assert result.quarantined == {frame_id(bad): reason}


def test_objects_lost_or_changed_after_commit_are_quarantined(ctx: IngestContext) -> None:
    """A deleted object and one whose bytes were swapped are caught by the workers."""
    device = FakeDevice()
    lost, swapped, kept = make_jpeg(1), make_jpeg(2), make_jpeg(3)
    ids = _commit(ctx, device, [lost, swapped, kept])
    ctx.store.delete(frame_object_key(device.device_id, frame_id(lost)))
    ctx.store.put_bytes(frame_object_key(device.device_id, frame_id(swapped)), make_jpeg(4))
    result = validate_frames(ctx, ids)
    assert result.quarantined == {
        frame_id(lost): "object_missing",
        frame_id(swapped): "hash_mismatch",
    }
    assert result.advanced == [frame_id(kept)]


def test_a_teleporting_fix_is_quarantined_alone(ctx: IngestContext) -> None:
    """One frame 5 km off its sequence is rejected; its neighbours are not."""
    device = FakeDevice()
    frames = [make_jpeg(i) for i in range(5)]
    entries = device.entries(frames)
    entries[2] = entries[2].model_copy(update={"lat": entries[2].lat + 0.05})
    ids = _commit(ctx, device, frames, entries)
    result = validate_frames(ctx, ids)
    assert result.quarantined == {frame_id(frames[2]): "teleport"}
    assert len(result.advanced) == 4


def test_capture_times_out_of_order_or_in_the_future(ctx: IngestContext) -> None:
    """A frame captured before its predecessor, and one captured tomorrow, are rejected."""
    device = FakeDevice()
    frames = [make_jpeg(i) for i in range(4)]
    entries = device.entries(frames)
    entries[2] = entries[2].model_copy(update={"capture_time": entries[0].capture_time})
    future = datetime.now(UTC) + timedelta(days=1)
    late = device.entries([make_jpeg(9)], sequence_id="seq-2", start=future)
    ids = _commit(ctx, device, [*frames, make_jpeg(9)], [*entries, *late])
    quarantined = validate_frames(ctx, ids).quarantined
    assert quarantined == {
        frame_id(frames[2]): "time_order",
        frame_id(make_jpeg(9)): "future_capture",
    }


def _reencoded(data: bytes, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_near_duplicates_within_and_across_devices(ctx: IngestContext) -> None:
    """A re-encoded copy of another device's frame, or of one's own at the same spot, is caught."""
    honest, replayer = FakeDevice(), FakeDevice()
    original = make_jpeg(30)
    validate_frames(ctx, _commit(ctx, honest, [original]))
    copy = _reencoded(original, 70)
    assert frame_id(copy) != frame_id(original)
    replay_ids = _commit(ctx, replayer, [copy], replayer.entries([copy], sequence_id="other"))
    assert validate_frames(ctx, replay_ids).quarantined == {
        frame_id(copy): "near_duplicate_other_device"
    }
    (entry,) = list_quarantine(ctx.catalog)
    assert f"frame {frame_id(original)[:12]} of device {honest.device_id[:12]}" in entry.detail
    assert "pixels agree" in entry.detail
    standing = _reencoded(original, 80)
    own = honest.entries([standing], first_index=1, step_m=0.0001)
    assert validate_frames(ctx, _commit(ctx, honest, [standing], own)).quarantined == {
        frame_id(standing): "near_duplicate"
    }


def _phash(data: bytes) -> int:
    facts = inspect_image(data, ValidationSettings())
    assert isinstance(facts, ImageFacts), facts
    return facts.phash


def test_another_cars_capture_of_the_place_is_accepted_a_copy_is_not(ctx: IngestContext) -> None:
    """A second car's frame of the same place (2 % closer, own exposure and noise) passes although
    its hash is as near as a copy's; a half-size copy of the first car's frame is a replay."""
    picture = textured_picture(1)
    first, second = capture(picture), second_captures(picture, 1)["zoom 2%"]
    copy = replays(first)["half size"]
    for other in (second, copy):  # the hash alone cannot tell them apart
        assert hamming(_phash(first), _phash(other)) <= ctx.validation.near_duplicate_bits
    first_car, second_car, replayer = FakeDevice(), FakeDevice(), FakeDevice()
    validate_frames(ctx, _commit(ctx, first_car, [first]))
    assert validate_frames(ctx, _commit(ctx, second_car, [second])).advanced == [frame_id(second)]
    assert validate_frames(ctx, _commit(ctx, replayer, [copy])).quarantined == {
        frame_id(copy): "near_duplicate_other_device"
    }


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_lookalike_whose_object_is_lost_is_no_evidence(
    ctx: IngestContext, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the frame a new one resembles has lost its object (or another file took its place),
    the new frame is judged without it, and the operator is told which object to check."""
    original = capture(textured_picture(2))
    owner, other = FakeDevice(), FakeDevice()
    validate_frames(ctx, _commit(ctx, owner, [original]))
    key = frame_object_key(owner.device_id, frame_id(original))
    if fault == "deleted":
        ctx.store.delete(key)
    else:
        ctx.store.put_bytes(key, make_jpeg(3))
    copy = _reencoded(original, 70)
    with caplog.at_level(logging.WARNING, logger="ingest.validate"):
        result = validate_frames(ctx, _commit(ctx, other, [copy]))
    assert result.advanced == [frame_id(copy)]
    assert f"{frame_id(original)[:12]} of device {owner.device_id[:12]} cannot be compared" in (
        caplog.text
    )
    assert key in caplog.text


def test_within_a_chunk_the_earliest_capture_is_kept(ctx: IngestContext) -> None:
    """Two near-identical frames of a standing car in one batch: the later capture is the
    duplicate, even when its frame id sorts first."""
    original = make_jpeg(33)
    earlier, later = sorted((_reencoded(original, 80), _reencoded(original, 85)), key=frame_id)[
        ::-1
    ]
    device = FakeDevice()
    entries = device.entries([earlier, later], step_m=0.01, speed_mps=1.0)
    result = validate_frames(ctx, _commit(ctx, device, [earlier, later], entries))
    assert result.advanced == [frame_id(earlier)]
    assert result.quarantined == {frame_id(later): "near_duplicate"}


def test_a_car_passing_its_own_spot_again_later_is_no_duplicate(ctx: IngestContext) -> None:
    """A device's own look-alike is a duplicate only within 30 m and 10 minutes."""
    original = make_jpeg(34)
    device = FakeDevice()
    start = datetime.now(UTC) - timedelta(minutes=20)
    validate_frames(ctx, _commit(ctx, device, [original], device.entries([original], start=start)))
    again = _reencoded(original, 80)
    later = device.entries([again], sequence_id="seq-2", start=start + timedelta(minutes=15))
    assert validate_frames(ctx, _commit(ctx, device, [again], later)).advanced == [frame_id(again)]


def test_audit_quarantines_unblurred_faces_and_release_accepts(ctx: IngestContext) -> None:
    """A frame with a visible face never reaches `accepted` unless an operator releases it."""
    marked, clean = _with_marker(5), make_jpeg(6)
    ids = _commit(ctx, FakeDevice(), [marked, clean])
    validate_frames(ctx, ids)
    result = audit_frames(ctx, MarkerScanner(), ids)
    assert result.quarantined == {frame_id(marked): "unblurred_face"}
    (entry,) = list_quarantine(ctx.catalog)
    assert "face" in entry.detail
    assert release(ctx.catalog, entry.id, by="ops@example.org", now=utcnow())["state"] == "accepted"
    assert _states(ctx)[frame_id(marked)] == FrameState.ACCEPTED
    with pytest.raises(ReleaseRefusedError):
        release(ctx.catalog, entry.id, by="ops@example.org", now=utcnow())


def test_frames_with_bad_bytes_cannot_be_released(ctx: IngestContext) -> None:
    """Release is refused where there is nothing valid to publish."""
    device = FakeDevice()
    data = make_jpeg(1)
    ids = _commit(ctx, device, [data])
    ctx.store.delete(frame_object_key(device.device_id, frame_id(data)))
    validate_frames(ctx, ids)
    (entry,) = list_quarantine(ctx.catalog)
    with pytest.raises(ReleaseRefusedError, match="upload it again"):
        release(ctx.catalog, entry.id, by="ops", now=utcnow())


def test_reconciler_requeues_then_dead_letters(ctx: IngestContext) -> None:
    """Stuck frames are sent again with one more attempt each; past the limit they are dead."""
    ids = _commit(ctx, FakeDevice(), [make_jpeg(1)])
    ctx.validation = ValidationSettings(stuck_after_s=0, max_attempts=2)
    clock = [utcnow()]
    ctx.clock = lambda: clock[0]
    for attempt in (1, 2):
        clock[0] += timedelta(seconds=1)
        assert reconcile(ctx).requeued == {"validate": ids}, attempt
    clock[0] += timedelta(seconds=1)
    result = reconcile(ctx)
    assert result.requeued == {} and result.dead == ids
    assert _states(ctx) == {ids[0]: FrameState.FAILED}
    with ctx.catalog.session() as session:
        (dead,) = session.scalars(select(DeadLetter)).all()
        assert (dead.stage, dead.attempts) == ("validate", 2)


def test_notifications_queue_only_committed_received_frames(ctx: IngestContext) -> None:
    """An S3 event queues a frame that waits for validation; others are ignored."""
    device = FakeDevice()
    waiting, done = make_jpeg(1), make_jpeg(2)
    ids = _commit(ctx, device, [waiting, done])
    validate_frames(ctx, [frame_id(done)])
    keys = [frame_object_key(device.device_id, fid) for fid in ids]
    keys.append(frame_object_key("0" * 64, frame_id(waiting)))  # another prefix: not this frame
    event = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Post",
                "s3": {"object": {"key": key.replace("/", "%2F")}},
            }
            for key in keys
        ]
    }
    assert frames_to_queue(ctx.catalog, event) == [frame_id(waiting)]
    assert frames_to_queue(ctx.catalog, {"Records": "garbage"}) == []


def test_an_object_swapped_after_validation_is_not_accepted(ctx: IngestContext) -> None:
    """The audit checks the bytes again: what it passes is what was validated."""
    device = FakeDevice()
    data = make_jpeg(1)
    ids = _commit(ctx, device, [data])
    validate_frames(ctx, ids)
    ctx.store.put_bytes(frame_object_key(device.device_id, frame_id(data)), _with_marker(2))
    assert audit_frames(ctx, MarkerScanner(), ids).quarantined == {ids[0]: "hash_mismatch"}
