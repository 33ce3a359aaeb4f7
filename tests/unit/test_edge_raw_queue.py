"""The raw queue: frames sealed at rest under a private key, held until they cannot fall into the
trimmed end of their trip, removed once settled; the quota pauses capture or evicts (and says so);
a full disk leaves everything consistent; the privacy stage fails closed."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edge.rawqueue
import edge.spool
from edge.anonymize import Anonymizer
from edge.drain import Drainer
from edge.livespool import LiveSpool
from edge.quota import PAUSED, Quota, SpaceKeeper
from edge.rawcrypt import KEY_FILE, RawCipher, RawKeyError, raw_key
from edge.rawqueue import NewCandidate, RawSpool, candidate_label
from edge.settings import PrivacySettings
from edge.spool import SpoolError
from edge.status import device_status
from edge.track import Pose
from models.settings import ModelSettings
from tests.edge_records import keyframe

TRIP = "cam0-20260601T060000Z"
START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
POSE = Pose(1780293600.0, 24.94, 60.17, 20.0, 12.5, 8.0, 1.1, None, 7.9)


@pytest.fixture
def cipher(tmp_path: Path) -> RawCipher:
    return RawCipher(raw_key(tmp_path / "identity"))


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[LiveSpool]:
    with LiveSpool(tmp_path / "spool") as opened:
        opened.open_trip(TRIP, 50.0, None)
        yield opened


def frame(seed: int, shape: tuple[int, int] = (120, 160)) -> Any:
    """A noisy colour frame (noise does not compress: blobs of a predictable size)."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def queue(spool: RawSpool, cipher: RawCipher, position: int, travelled_m: float) -> int:
    """Seal and queue frame `position` of the trip, `travelled_m` along it."""
    blob = cipher.seal(frame(position), candidate_label(TRIP, position))
    entry = NewCandidate(
        TRIP, position, 10 * position, travelled_m, "2026-06-01T06:00:00+00:00", POSE
    )
    return spool.queue(entry, blob)


def test_the_raw_key_is_private_made_once_and_refused_when_exposed(tmp_path: Path) -> None:
    """Created with mode 600 on first use, the same key afterwards, refused if others can read it."""
    folder = tmp_path / "identity"
    key = raw_key(folder)
    assert len(key) == 32 and raw_key(folder) == key
    assert (folder / KEY_FILE).stat().st_mode & 0o777 == 0o600
    (folder / KEY_FILE).chmod(0o644)
    with pytest.raises(RawKeyError, match="chmod 600"):
        raw_key(folder)


def test_sealed_frames_keep_their_pixels_secret_and_exact(cipher: RawCipher) -> None:
    """At rest a frame is neither PNG nor its pixels; it opens exactly, but only under its own
    label and unaltered."""
    image = frame(1)
    blob = cipher.seal(image, "trip#3")
    assert b"PNG" not in blob[:64] and image.tobytes()[:64] not in blob
    opened = cipher.open(blob, "trip#3")
    assert isinstance(opened, np.ndarray) and np.array_equal(opened, image)
    assert "integrity" in str(cipher.open(blob, "trip#4"))
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert "integrity" in str(cipher.open(tampered, "trip#3"))


def test_candidates_wait_until_they_cannot_be_in_the_trimmed_trip_end(
    spool: LiveSpool, cipher: RawCipher
) -> None:
    """Released once the trip is `trim_m` beyond them; at the trip's end those within `trim_m`
    of it are dropped as the trip's end, their frames deleted."""
    near, far = queue(spool, cipher, 0, 10.0), queue(spool, cipher, 1, 60.0)
    assert spool.next_ready() is None
    spool.advance_trip(TRIP, 70.0)
    ready = spool.next_ready()
    assert ready is not None and ready.id == near and ready.pose == POSE
    assert spool.next_ready(skip={near}) is None
    assert spool.raw_counts()["held_for_trip_end"] == 1
    assert spool.end_trip(TRIP, 100.0) == 1
    assert not (spool.raw_dir / f"{far}.bin").exists()
    assert spool.raw_counts() | {"held_for_trip_end": 0} == {
        "queued": 1,
        "done": 0,
        "dropped": 1,
        "evicted": 0,
        "held_for_trip_end": 0,
    }


def test_a_frame_a_crash_left_without_its_row_is_removed_by_the_first_connection(
    tmp_path: Path, spool: LiveSpool, cipher: RawCipher
) -> None:
    """Orphans go at open, but only on the process's first connection: a thread's connection
    never deletes a file another thread is about to give a row."""
    queue(spool, cipher, 0, 10.0)
    orphan = spool.raw_dir / "99.bin"
    orphan.write_bytes(b"half a frame")
    with RawSpool(tmp_path / "spool", first=False):
        assert orphan.exists()
    spool.close()  # the process ends; the next one's first connection tidies
    with RawSpool(tmp_path / "spool") as reopened:
        assert not orphan.exists() and reopened.raw_counts()["queued"] == 1


class FullDisk:
    """The `os` module as a module sees it on a full disk: writes and fsyncs fail."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    @staticmethod
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_refuses_a_frame_clearly_and_leaves_the_queue_consistent(
    spool: LiveSpool, cipher: RawCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing a raw frame: an error that says the disk is full, no row, no file."""
    monkeypatch.setattr(edge.rawqueue, "os", FullDisk())
    with pytest.raises(SpoolError, match="the disk is full: free space or lower"):
        queue(spool, cipher, 0, 10.0)
    monkeypatch.undo()
    assert not list(spool.raw_dir.iterdir())
    assert spool.raw_counts()["queued"] == 0 and spool.integrity_problems() == []


def keeper_with_room(spool: LiveSpool, blobs: float, *, evict: bool) -> SpaceKeeper:
    """A quota with room for `blobs` more raw frames of the test's size beyond what is there."""
    size = len(RawCipher(os.urandom(32)).seal(frame(0), "x"))
    used = SpaceKeeper(spool, Quota()).usage_bytes()
    return SpaceKeeper(spool, Quota(round(used + blobs * size), allow_evict=evict))


def test_a_full_quota_pauses_capture_and_status_says_so(
    spool: LiveSpool, cipher: RawCipher
) -> None:
    """Without leave to evict, a frame that does not fit is refused and capture is paused; status
    shows it (and the error) until a frame is stored again."""
    keeper = keeper_with_room(spool, 1.5, evict=False)
    size = len(cipher.seal(frame(0), "x"))
    assert keeper.make_room(size) is None
    queue(spool, cipher, 0, 10.0)
    refusal = keeper.make_room(size)
    assert refusal is not None and refusal.startswith("spool full")
    keeper.pause(refusal)
    status = device_status(spool)
    assert status["capture_paused"]["reason"] == refusal  # type: ignore[index]
    assert "capture paused: spool full" in status["last_error"]["message"]  # type: ignore[index]
    keeper.resume()
    assert spool.get_value(PAUSED) is None


def add_keyframe(spool: LiveSpool, index: int) -> str:
    """A 40 kB keyframe of an earlier trip; its id."""
    record, data = keyframe("old", index, 4.0 * index, START, size=40_000)
    spool.add(record, data)
    return record.frame_id


def test_eviction_takes_the_oldest_raw_frames_then_unbatched_keyframes_and_says_so(
    spool: LiveSpool, cipher: RawCipher
) -> None:
    """With leave to evict, room comes from the oldest raw candidate first, then the oldest
    keyframe not yet sealed into a batch; each eviction is an event that status counts."""
    first = queue(spool, cipher, 0, 10.0)
    queue(spool, cipher, 1, 14.0)
    keeper = keeper_with_room(spool, 0.5, evict=True)
    assert keeper.make_room(len(cipher.seal(frame(2), "x"))) is None
    assert spool.oldest_queued() is not None and spool.oldest_queued().id != first  # type: ignore[union-attr]
    assert keeper.evictions == 1 and spool.raw_counts()["evicted"] == 1
    old = [add_keyframe(spool, i) for i in range(3)]
    keeper = keeper_with_room(spool, 0.0, evict=True)
    spool.settle(spool.oldest_queued(), "done")  # type: ignore[arg-type]
    assert keeper.make_room(60_000) is None
    remaining = {r.frame_id for r in spool.records()}
    assert old[0] not in remaining and old[2] in remaining
    evictions = device_status(spool)["evictions"]
    assert evictions["count"] >= 2  # type: ignore[index]
    assert "evicted keyframe" in evictions["last"]["message"]  # type: ignore[index]


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    """The real face and plate detectors."""
    return Anonymizer.load(PrivacySettings(), ModelSettings())


def test_the_privacy_stage_fails_closed_and_waits_out_a_full_disk(
    spool: LiveSpool, cipher: RawCipher, anonymizer: Anonymizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged raw frame is dropped with the reason and never written; a keyframe the disk
    cannot take leaves its candidate queued; once there is room it is spooled as `edge process`
    would record it, and its raw frame is deleted."""
    damaged, good = queue(spool, cipher, 0, 10.0), queue(spool, cipher, 1, 14.0)
    (spool.raw_dir / f"{damaged}.bin").write_bytes(os.urandom(500))
    spool.end_trip(TRIP, 100.0)
    drainer = Drainer(spool, cipher, anonymizer)
    assert drainer.drain_some()
    assert list(drainer.report.dropped) == [
        "the raw frame failed its integrity check (damaged, or sealed under another key)"
    ]
    monkeypatch.setattr(edge.spool, "os", FullDisk())
    assert not drainer.drain_some()
    assert drainer.report.write_failures == 1 and spool.raw_counts()["queued"] == 1
    assert "No space left" in str(spool.status()["last_error"])
    monkeypatch.undo()
    assert drainer.drain_some() and drainer.report.keyframes == 1
    (record,) = spool.records()
    assert (record.sequence_id, record.index, record.source_frame) == (TRIP, 1, 10)
    assert record.travelled_m == 14.0 and not (spool.raw_dir / f"{good}.bin").exists()
    assert spool.raw_counts()["done"] == 1 and spool.raw_counts()["dropped"] == 1


def _drained(folder: Path, cipher: RawCipher, anonymizer: Anonymizer) -> tuple[list[Any], int]:
    """Queue seven candidates (the third damaged), drain them all: each keyframe's record and
    bytes in spool order, and how many passes it took."""
    with LiveSpool(folder) as spool:
        spool.open_trip(TRIP, 50.0, None)
        ids = [queue(spool, cipher, k, 10.0 + 4 * k) for k in range(7)]
        (spool.raw_dir / f"{ids[2]}.bin").write_bytes(os.urandom(500))
        spool.end_trip(TRIP, 100.0)
        drainer = Drainer(spool, cipher, anonymizer)
        passes = 0
        while drainer.drain_some():
            passes += 1
        assert spool.raw_counts()["done"] == 6 and spool.raw_counts()["dropped"] == 1
        return [(r, spool.keyframe_bytes(r.frame_id)) for r in spool.records()], passes


def test_the_privacy_stage_anonymizes_a_few_at_once_into_the_spool_one_at_a_time_makes(
    tmp_path: Path, cipher: RawCipher, anonymizer: Anonymizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three candidates anonymized at once give the spool one at a time gives (the same records,
    order and bytes); a keyframe the disk refuses mid-batch stays queued with those after it,
    and the ones before are spooled."""
    parallel = Anonymizer(anonymizer.face, anonymizer.plate, anonymizer.settings, 3)
    one, one_passes = _drained(tmp_path / "one", cipher, anonymizer)
    three, three_passes = _drained(tmp_path / "three", cipher, parallel)
    assert len(one) == 6 and one == three
    assert (one_passes, three_passes) == (7, 3)
    with LiveSpool(tmp_path / "full") as spool:
        spool.open_trip(TRIP, 50.0, None)
        for k in range(3):
            queue(spool, cipher, k, 10.0 + 4 * k)
        spool.end_trip(TRIP, 100.0)
        add = spool.add

        def second_fails(*args: Any) -> bool:
            if spool.records():
                raise SpoolError("No space left on device")
            return add(*args)

        monkeypatch.setattr(spool, "add", second_fails)
        drainer = Drainer(spool, cipher, parallel)
        assert not drainer.drain_some()
        assert (spool.raw_counts()["done"], spool.raw_counts()["queued"]) == (1, 2)
        monkeypatch.undo()
        assert drainer.drain_some() and [r.source_frame for r in spool.records()] == [0, 10, 20]
        assert spool.raw_counts()["done"] == 3
