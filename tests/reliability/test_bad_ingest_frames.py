"""The corpus's frames, committed through the ingest API in one drive between good frames and
validated by a real Celery worker over PostgreSQL: each bad frame is quarantined with its reason
and a detail, and every good frame of the drive (even those right after a frame dated tomorrow)
is validated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from sqlalchemy import select

from ingest.catalog import Frame, FrameState, Quarantine
from ingest.db import Catalog
from ingest.protocol import FrameEntry, frame_object_key
from ingest.queues import AUDIT_QUEUE, INGEST_QUEUE, create_celery_app
from ingest.settings import IngestSettings
from roadswarm.stack import ingest_worker
from tests.ingest_helpers import (
    UPLOAD_SECRET,
    FakeDevice,
    Harness,
    frame_id,
    make_jpeg,
    postgres_database,
    require_redis,
    served_api,
)
from tests.reliability.bad_corpus import BadCase, ids
from tests.reliability.bad_frames import FRAME_CASES, REPLAY_CASES, BadFrame, replayed_image

REDIS_URL = "redis://127.0.0.1:6379/4"  # this suite's database on the shared Redis
SETTLE_S = 180


@dataclass
class Validated:
    """The drive's frames after validation: states and quarantine rows, by frame id."""

    ids: dict[str, str]  # case id -> frame id
    good: list[str]
    states: dict[str, FrameState]
    quarantine: dict[tuple[str, str], Quarantine]  # (frame id, device id) -> row
    device: FakeDevice
    metrics: str


def _drive(device: FakeDevice) -> tuple[list[bytes], list[FrameEntry], dict[str, str], list[str]]:
    """A good frame, then each case's frame, alternately, ending with a good one."""
    frames: list[bytes] = []
    changes: dict[int, BadFrame] = {}
    case_ids, good = {}, []
    for n, case in enumerate([*FRAME_CASES, *REPLAY_CASES]):
        frames.append(make_jpeg(6000 + n))
        good.append(frame_id(frames[-1]))
        bad: BadFrame = case.make()
        changes[len(frames)] = bad
        case_ids[case.id] = frame_id(bad.data)
        frames.append(bad.data)
    frames.append(make_jpeg(5999))
    good.append(frame_id(frames[-1]))
    entries = device.entries(frames, sequence_id="drive")
    for index, bad in changes.items():
        if bad.change is not None:
            entries[index] = bad.change(entries[index])
    return frames, entries, case_ids, good


def _after_commit(api: Harness, device: FakeDevice) -> None:
    """What happens to some objects between the commit and the worker."""
    for case in FRAME_CASES:
        bad = case.make()
        key = frame_object_key(device.device_id, frame_id(bad.data))
        if bad.after_commit == "delete":
            api.store.delete(key)
        elif bad.after_commit == "swap":
            api.store.put_bytes(key, make_jpeg(7000))


def _settle(catalog: Catalog) -> None:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        with catalog.session() as session:
            waiting = session.scalars(
                select(Frame.frame_id).where(Frame.state == FrameState.RECEIVED)
            ).first()
        if waiting is None:
            return
        time.sleep(0.5)
    pytest.fail(f"frames still waiting for validation after {SETTLE_S} s")


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Validated]:
    """The corpus committed, then validated by a real worker (audit tasks are left queued)."""
    require_redis()
    folder = tmp_path_factory.mktemp("bad-frames")
    celery = create_celery_app(REDIS_URL)
    queues = redis.Redis.from_url(REDIS_URL)
    queues.delete(INGEST_QUEUE, AUDIT_QUEUE)
    settings = IngestSettings(upload_secret=UPLOAD_SECRET)
    with postgres_database() as url:
        catalog = Catalog.connect(url)
        with served_api(catalog, folder / "store", settings=settings, celery=celery) as api:
            device, other = FakeDevice(), FakeDevice()
            original, _ = replayed_image()
            for each in (other, device):
                assert api.register(each).status_code == 201
            api.upload(other, [original])
            assert (
                api.commit(
                    other, other.manifest(other.entries([original], sequence_id="other"))
                ).status_code
                == 201
            )
            frames, entries, case_ids, good = _drive(device)
            api.upload(device, frames)
            answer = api.commit(device, device.manifest(entries))
            assert answer.status_code == 201, answer.text
            _after_commit(api, device)
            worker = ingest_worker(
                broker_url=REDIS_URL,
                database_url=url,
                store_dir=folder / "store",
                workdir=folder / "worker",
                queues=[INGEST_QUEUE],
                concurrency=1,
            )
            with worker:
                _settle(catalog)
            with catalog.session() as session:
                states = {f.frame_id: f.state for f in session.scalars(select(Frame))}
                rows = {(q.frame_id, q.device_id): q for q in session.scalars(select(Quarantine))}
                session.expunge_all()
            metrics = api.http.get("/metrics").text
            yield Validated(case_ids, [*good, frame_id(original)], states, rows, device, metrics)
        catalog.dispose()
    queues.delete(INGEST_QUEUE, AUDIT_QUEUE)


CASES = [*FRAME_CASES, *REPLAY_CASES]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_a_bad_frame_is_quarantined_with_its_reason(case: BadCase, validated: Validated) -> None:
    """The frame's quarantine row names the case's reason and says what was found."""
    fid = validated.ids[case.id]
    row = validated.quarantine.get((fid, validated.device.device_id))
    assert row is not None and row.reason == case.says, row and (row.reason, row.detail)
    assert row.detail and row.released_at is None
    assert f'reason="{case.says}"' in validated.metrics
    if case.says == "duplicate_of_other_device":  # the first device's frame is untouched
        assert validated.states[fid] == FrameState.VALIDATED
    else:
        assert validated.states[fid] == FrameState.QUARANTINED


def test_every_good_frame_is_validated(validated: Validated) -> None:
    """The good frames around the bad ones, and the other device's original, all pass."""
    assert {fid: validated.states[fid] for fid in validated.good} == dict.fromkeys(
        validated.good, FrameState.VALIDATED
    )
