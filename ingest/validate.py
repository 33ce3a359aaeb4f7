"""The validation stage: each received frame's object, image, track and novelty are checked.

Objects are read and decoded outside any database transaction (the frames' own, then those of
near-duplicate candidates from other devices); the verdicts are then written in one short
transaction, so workers never hold the catalog while they wait for the store.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.errors import ObjectCorruptError, ObjectNotFoundError
from ingest.imagecheck import (
    ImageFacts,
    Rejection,
    check_bytes,
    hamming,
    inspect_image,
    phash_bands,
    to_signed64,
    to_unsigned64,
)
from ingest.pixelmatch import Thumbnail, agreement
from ingest.plausibility import TrackPoint, distance_m, implausible_points, time_problem
from ingest.settings import ValidationSettings
from ingest.states import frames_in_state, quarantine, record_run
from ingest.storage import ObjectStore

STAGE = "validate"
NEAR_DUPLICATE_WINDOW_S = 600.0
log = logging.getLogger(__name__)


@dataclass
class IngestContext:
    """What every stage works with: the catalog, the objects, the limits and the clock."""

    catalog: Catalog
    store: ObjectStore
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    clock: Callable[[], datetime] = utcnow


@dataclass(frozen=True)
class StageResult:
    """Frames a stage moved on, and those it quarantined (with the reason)."""

    advanced: list[str]
    quarantined: dict[str, str]


def validate_frames(ctx: IngestContext, frame_ids: Sequence[str]) -> StageResult:
    """Check received frames; move each to `validated` or quarantine it with its reason."""
    started = time.perf_counter()
    with ctx.catalog.session() as session:
        frames = frames_in_state(session, frame_ids, FrameState.RECEIVED)
        track_verdicts = _track_verdicts(session, frames, ctx.validation)
    verdicts = {frame.frame_id: _object_verdict(ctx, frame) for frame in frames}
    rejections = {fid: v for fid, v in verdicts.items() if isinstance(v, Rejection)}
    rejections.update(track_verdicts)
    facts = {
        fid: v for fid, v in verdicts.items() if isinstance(v, ImageFacts) and fid not in rejections
    }
    passed = [f for f in frames if f.frame_id in facts]
    with ctx.catalog.session() as session:
        seen = _candidates(session, [phash_bands(v.phash) for v in facts.values()])
    thumbnails = _thumbnails(ctx, passed, facts, seen)
    rejections.update(_duplicate_problems(passed, facts, seen, thumbnails, ctx.validation))
    quarantined: dict[str, str] = {}
    with ctx.catalog.session() as session:
        now = ctx.clock()
        for frame in frames:
            rejection = rejections.get(frame.frame_id)
            if rejection is not None and quarantine(
                session, frame, rejection, expected=FrameState.RECEIVED, now=now
            ):
                quarantined[frame.frame_id] = rejection.reason
        clean = {f.frame_id: verdicts[f.frame_id] for f in frames if f.frame_id not in rejections}
        advanced = _mark_validated(session, clean, now)
        record_run(session, STAGE, len(frames), time.perf_counter() - started, now)
    return StageResult(advanced, quarantined)


def _object_verdict(ctx: IngestContext, frame: Frame) -> ImageFacts | Rejection:
    """Read and decode the frame's object; store outages propagate (the task is retried)."""
    try:
        data = ctx.store.get_bytes(frame.object_key)
    except ObjectNotFoundError:
        return Rejection("object_missing", f"no object at {frame.object_key}")
    except ObjectCorruptError as exc:
        return Rejection("hash_mismatch", str(exc))
    return check_bytes(data, frame.frame_id, frame.size_bytes) or inspect_image(
        data, ctx.validation
    )


def _track_verdicts(
    session: Session, frames: Sequence[Frame], settings: ValidationSettings
) -> dict[str, Rejection]:
    """Capture-time and GPS-plausibility rejections of `frames`, judged within their sequences."""
    verdicts: dict[str, Rejection] = {}
    by_sequence: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    for frame in frames:
        by_sequence[(frame.device_id, frame.sequence_id)].append(frame)
        problem = time_problem(_point(frame), frame.received_at, settings)
        if problem is not None:
            verdicts[frame.frame_id] = problem
    for (device_id, sequence_id), members in by_sequence.items():
        last = max(frame.sequence_index for frame in members)
        sequence = session.scalars(
            select(Frame)
            .where(
                Frame.device_id == device_id,
                Frame.sequence_id == sequence_id,
                Frame.sequence_index <= last,
            )
            .order_by(Frame.sequence_index)
        )
        # A frame dated outside its arrival's window is never an anchor: one dated tomorrow
        # would make every later frame of the drive look as if it went back in time.
        datable = [f for f in sequence if time_problem(_point(f), f.received_at, settings) is None]
        rejected = implausible_points([_point(f) for f in datable], settings)
        for frame in members:
            if frame.sequence_index in rejected:
                verdicts.setdefault(frame.frame_id, rejected[frame.sequence_index])
    return verdicts


def _point(frame: Frame) -> TrackPoint:
    return TrackPoint(
        frame.sequence_index, frame.capture_time, frame.lat, frame.lon, frame.speed_mps
    )


@dataclass(frozen=True)
class _Seen:
    """What near-duplicate checks compare: a frame's owner, hash, place and time, and where its
    object is (to compare pixels with another device's)."""

    frame_id: str
    device_id: str
    phash: int
    point: TrackPoint
    object_key: str
    size_bytes: int


def _seen(frame: Frame, facts: ImageFacts) -> _Seen:
    return _Seen(
        frame.frame_id,
        frame.device_id,
        facts.phash,
        _point(frame),
        frame.object_key,
        frame.size_bytes,
    )


def _duplicate_problems(
    frames: Sequence[Frame],
    facts: Mapping[str, ImageFacts],
    seen: Sequence[_Seen],
    thumbnails: Mapping[str, Thumbnail | None],
    settings: ValidationSettings,
) -> dict[str, Rejection]:
    """Near-identical images among the catalog's frames `seen` and earlier captures of this chunk:
    another device's picture (a replay), or this device's own at the same place and time. Within
    the chunk the earliest capture is kept (the frame id breaks ties)."""
    earlier = list(seen)
    problems: dict[str, Rejection] = {}
    for frame in sorted(frames, key=lambda f: (f.capture_time, f.frame_id)):
        mine = _seen(frame, facts[frame.frame_id])
        problem = next(
            (
                p
                for other in earlier
                if (p := _duplicate_of(mine, other, settings, thumbnails)) is not None
            ),
            None,
        )
        if problem is None:
            earlier.append(mine)
        else:
            problems[frame.frame_id] = problem
    return problems


def _candidates(session: Session, bands: list[tuple[int, int, int, int]]) -> list[_Seen]:
    """Validated or accepted frames sharing at least one hash band with one of `bands`."""
    if not bands:
        return []
    columns = (Frame.phash_band0, Frame.phash_band1, Frame.phash_band2, Frame.phash_band3)
    wanted = [sorted({b[i] for b in bands}) for i in range(len(columns))]
    rows = session.execute(
        select(
            Frame.frame_id,
            Frame.device_id,
            Frame.phash,
            Frame.sequence_index,
            Frame.capture_time,
            Frame.lat,
            Frame.lon,
            Frame.speed_mps,
            Frame.object_key,
            Frame.size_bytes,
        ).where(
            or_(*(column.in_(values) for column, values in zip(columns, wanted, strict=True))),
            Frame.state.in_((FrameState.VALIDATED, FrameState.ACCEPTED)),
        )
    ).all()
    return [
        _Seen(
            fid, device, to_unsigned64(phash), TrackPoint(index, when, lat, lon, speed), key, size
        )
        for fid, device, phash, index, when, lat, lon, speed, key, size in rows
        if phash is not None
    ]


def _thumbnails(
    ctx: IngestContext,
    frames: Sequence[Frame],
    facts: Mapping[str, ImageFacts],
    seen: Sequence[_Seen],
) -> dict[str, Thumbnail | None]:
    """Thumbnails of this chunk's frames, and of the catalog's frames that another device's frame
    here nearly repeats (read from the store, each once)."""
    found: dict[str, Thumbnail | None] = {fid: f.thumbnail for fid, f in facts.items()}
    bits = ctx.validation.near_duplicate_bits
    for other in seen:
        if other.frame_id not in found and any(
            frame.device_id != other.device_id
            and hamming(facts[frame.frame_id].phash, other.phash) <= bits
            for frame in frames
        ):
            found[other.frame_id] = _stored_thumbnail(ctx, other)
    return found


def _stored_thumbnail(ctx: IngestContext, seen: _Seen) -> Thumbnail | None:
    """The thumbnail of a catalogued frame's object. None when the object is gone or no longer
    the frame: the store's fault is no evidence against a new frame, which is then judged without
    it. Store outages propagate (the task is retried)."""
    try:
        data = ctx.store.get_bytes(seen.object_key)
    except (ObjectNotFoundError, ObjectCorruptError) as exc:
        _warn_uncomparable(seen, str(exc))
        return None
    verdict = check_bytes(data, seen.frame_id, seen.size_bytes) or inspect_image(
        data, ctx.validation
    )
    if isinstance(verdict, Rejection):
        _warn_uncomparable(seen, f"{verdict.reason}: {verdict.detail}")
        return None
    return verdict.thumbnail


def _warn_uncomparable(seen: _Seen, why: str) -> None:
    log.warning(
        "near-duplicate candidate %s of device %s cannot be compared (%s): frames resembling it "
        "are judged without it; check its object %s",
        seen.frame_id[:12],
        seen.device_id[:12],
        why,
        seen.object_key,
    )


def _duplicate_of(
    mine: _Seen,
    other: _Seen,
    settings: ValidationSettings,
    thumbnails: Mapping[str, Thumbnail | None],
) -> Rejection | None:
    if (
        other.frame_id == mine.frame_id
        or hamming(other.phash, mine.phash) > settings.near_duplicate_bits
    ):
        return None
    if other.device_id != mine.device_id:
        return _replay_of(mine, other, settings, thumbnails)
    if _same_place_and_time(mine.point, other.point, settings):
        return Rejection(
            "near_duplicate", f"nearly the same image as this device's frame {other.frame_id[:12]}"
        )
    return None


def _replay_of(
    mine: _Seen,
    other: _Seen,
    settings: ValidationSettings,
    thumbnails: Mapping[str, Thumbnail | None],
) -> Rejection | None:
    """Another device's look-alike is a replay only when the pixels repeat it: a second capture
    of the same street looks alike to the hash but not pixel for pixel."""
    theirs, ours = thumbnails.get(other.frame_id), thumbnails.get(mine.frame_id)
    if theirs is None or ours is None:
        return None
    score = agreement(theirs, ours)
    if score < settings.replay_min_agreement:
        return None
    return Rejection(
        "near_duplicate_other_device",
        f"the same picture as frame {other.frame_id[:12]} of device {other.device_id[:12]}, "
        f"re-encoded, resized or cropped: aligned, their pixels agree {score:.3f} (a second "
        f"capture of the place stays below {settings.replay_min_agreement}); if this device "
        "really took it, release it with `roadswarm ops quarantine release`",
    )


def _same_place_and_time(a: TrackPoint, b: TrackPoint, settings: ValidationSettings) -> bool:
    close = distance_m(a, b) <= settings.near_duplicate_radius_m
    return close and abs((a.time - b.time).total_seconds()) <= NEAR_DUPLICATE_WINDOW_S


def _mark_validated(
    session: Session, facts: dict[str, ImageFacts | Rejection], now: datetime
) -> list[str]:
    """Move the clean frames to `validated` in one statement; those another worker moved first
    are left alone. Return the ids this call moved."""
    rows = []
    for fid, fact in sorted(facts.items()):
        assert isinstance(fact, ImageFacts)
        bands = phash_bands(fact.phash)
        rows.append(
            {
                "fid": fid,
                "width": fact.width,
                "height": fact.height,
                "phash": to_signed64(fact.phash),
                **{f"band{i}": band for i, band in enumerate(bands)},
            }
        )
    if not rows:
        return []
    still_received = set(
        session.scalars(
            select(Frame.frame_id)
            .where(Frame.frame_id.in_(list(facts)), Frame.state == FrameState.RECEIVED)
            .with_for_update()
        )
    )
    table = cast(Table, Frame.__table__)
    session.execute(
        update(table)
        .where(table.c.frame_id == bindparam("fid"), table.c.state == FrameState.RECEIVED.value)
        .values(
            state=FrameState.VALIDATED.value,
            state_since=now,
            last_error=None,
            width=bindparam("width"),
            height=bindparam("height"),
            phash=bindparam("phash"),
            phash_band0=bindparam("band0"),
            phash_band1=bindparam("band1"),
            phash_band2=bindparam("band2"),
            phash_band3=bindparam("band3"),
        ),
        [row for row in rows if row["fid"] in still_received],
    )
    return sorted(still_received)
