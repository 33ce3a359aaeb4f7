"""The reconciler: the catalog, not the broker, decides what still needs doing.

A message can be lost (broker restart) or its task can keep failing. Frames that sat in a pending
state longer than `stuck_after_s` are sent again; after `max_attempts` they go to the dead-letter
table with the last error seen, for an operator to look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from ingest.catalog import DeadLetter, Frame, FrameState
from ingest.validate import IngestContext

STAGE_OF_STATE = {FrameState.RECEIVED: "validate", FrameState.VALIDATED: "audit"}
BATCH_LIMIT = 5000


@dataclass(frozen=True)
class Reconciled:
    """Frames sent again, by stage, and frames given up on."""

    requeued: dict[str, list[str]]
    dead: list[str]


def reconcile(ctx: IngestContext) -> Reconciled:
    """Find stuck frames; bump their attempts and return them to re-queue, or dead-letter them."""
    now = ctx.clock()
    cutoff = now - timedelta(seconds=ctx.validation.stuck_after_s)
    requeued: dict[str, list[str]] = {}
    dead: list[str] = []
    with ctx.catalog.session() as session:
        stuck = session.scalars(
            select(Frame)
            .where(Frame.state.in_(tuple(STAGE_OF_STATE)), Frame.state_since < cutoff)
            .order_by(Frame.state_since)
            .limit(BATCH_LIMIT)
            .with_for_update(skip_locked=True)
        ).all()
        for frame in stuck:
            stage = STAGE_OF_STATE[frame.state]
            attempts = frame.attempts + 1
            if attempts > ctx.validation.max_attempts:
                session.add(
                    DeadLetter(
                        frame_id=frame.frame_id,
                        stage=stage,
                        attempts=frame.attempts,
                        last_error=frame.last_error or "no error recorded (message lost?)",
                        created_at=now,
                    )
                )
                frame.state, frame.state_since = FrameState.FAILED, now
                dead.append(frame.frame_id)
            else:
                # A fresh `state_since` keeps the frame from being sent again before it had time.
                frame.attempts, frame.state_since = attempts, now
                requeued.setdefault(stage, []).append(frame.frame_id)
    return Reconciled(requeued, dead)
