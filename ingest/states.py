"""Moving frames between states. Every move is conditional on the state the mover expects, so a
task delivered twice, or run by two workers at once, moves a frame once and records it once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.orm import Session

from ingest.catalog import Frame, FrameState, Quarantine, TaskRun
from ingest.imagecheck import Rejection

SequenceKey = tuple[str, str]  # (device_id, sequence_id)


def accepted_of(key: SequenceKey) -> tuple[ColumnElement[bool], ...]:
    """The conditions that select the accepted frames of one sequence."""
    device_id, sequence_id = key
    return (
        Frame.device_id == device_id,
        Frame.sequence_id == sequence_id,
        Frame.state == FrameState.ACCEPTED,
    )


def advance(
    session: Session,
    frame_id: str,
    *,
    expected: FrameState,
    to: FrameState,
    now: datetime,
    **values: object,
) -> bool:
    """Move a frame from `expected` to `to` (setting `values`); False if it was not in `expected`."""
    result = session.execute(
        update(Frame)
        .where(Frame.frame_id == frame_id, Frame.state == expected)
        .values(state=to, state_since=now, last_error=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def quarantine(
    session: Session, frame: Frame, rejection: Rejection, *, expected: FrameState, now: datetime
) -> bool:
    """Quarantine a frame with its reason; False if another worker moved it first."""
    if not advance(session, frame.frame_id, expected=expected, to=FrameState.QUARANTINED, now=now):
        return False
    session.execute(
        insert(Quarantine).values(
            frame_id=frame.frame_id,
            device_id=frame.device_id,
            batch_counter=frame.batch_counter,
            reason=rejection.reason,
            detail=rejection.detail,
            created_at=now,
        )
    )
    return True


def frames_in_state(session: Session, frame_ids: Iterable[str], state: FrameState) -> list[Frame]:
    """The frames among `frame_ids` that are in `state` (others were handled already)."""
    ids = sorted(set(frame_ids))
    return list(
        session.scalars(
            select(Frame)
            .where(Frame.frame_id.in_(ids), Frame.state == state)
            .order_by(Frame.frame_id)
        )
    )


def record_error(session: Session, frame_ids: Iterable[str], error: str) -> None:
    """Remember the last error a stage hit on these frames (the reconciler reports it)."""
    session.execute(
        update(Frame)
        .where(Frame.frame_id.in_(sorted(set(frame_ids))))
        .values(last_error=error[:2000])
        .execution_options(synchronize_session=False)
    )


def record_run(session: Session, stage: str, frames: int, seconds: float, now: datetime) -> None:
    """One finished unit of work, for throughput and latency figures."""
    session.add(TaskRun(stage=stage, frames=frames, seconds=seconds, finished_at=now))


def sequence_keys(session: Session, frame_ids: Iterable[str]) -> list[SequenceKey]:
    """The (device, sequence) pairs these frames belong to."""
    rows = session.execute(
        select(Frame.device_id, Frame.sequence_id)
        .where(Frame.frame_id.in_(sorted(set(frame_ids))))
        .distinct()
    ).all()
    return sorted((device, sequence) for device, sequence in rows)
