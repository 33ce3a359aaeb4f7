"""The privacy audit: the server looks for faces and plates the edge left unblurred.

It runs the edge's own scanner (`models.scan`) over the whole frame at full resolution (the server
does not know the camera's horizon, so it looks everywhere), with thresholds above the edge's:
a blurred face no longer scores high, an overlooked one does. A frame with a find is quarantined,
never published; a frame the audit could not check stays where it is and is retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from ingest.catalog import Frame, FrameState
from ingest.errors import ObjectCorruptError, ObjectNotFoundError
from ingest.imagecheck import Rejection, check_bytes
from ingest.states import advance, frames_in_state, quarantine, record_run
from ingest.validate import IngestContext, StageResult
from models.boxes import Detections

STAGE = "audit"


class Scanner(Protocol):
    """What the audit needs of `models.scan.PrivacyScanner` (tests pass a stand-in)."""

    def find(
        self,
        image: NDArray[np.uint8],
        *,
        horizon: float | None = None,
        thresholds: tuple[float, float] | None = None,
    ) -> tuple[Detections, Detections]:
        """Faces and plates in frame pixels."""
        ...


def audit_frames(ctx: IngestContext, scanner: Scanner, frame_ids: Sequence[str]) -> StageResult:
    """Audit validated frames: `accepted` when nothing is found, quarantined otherwise."""
    started = time.perf_counter()
    with ctx.catalog.session() as session:
        frames = frames_in_state(session, frame_ids, FrameState.VALIDATED)
    thresholds = (ctx.validation.audit_face_threshold, ctx.validation.audit_plate_threshold)
    findings = {frame.frame_id: _audit(ctx, scanner, frame, thresholds) for frame in frames}
    advanced: list[str] = []
    quarantined: dict[str, str] = {}
    with ctx.catalog.session() as session:
        now = ctx.clock()
        for frame in frames:
            finding = findings[frame.frame_id]
            if finding is not None:
                if quarantine(session, frame, finding, expected=FrameState.VALIDATED, now=now):
                    quarantined[frame.frame_id] = finding.reason
            elif advance(
                session,
                frame.frame_id,
                expected=FrameState.VALIDATED,
                to=FrameState.ACCEPTED,
                now=now,
            ):
                advanced.append(frame.frame_id)
        record_run(session, STAGE, len(frames), time.perf_counter() - started, now)
    return StageResult(advanced, quarantined)


def _audit(
    ctx: IngestContext, scanner: Scanner, frame: Frame, thresholds: tuple[float, float]
) -> Rejection | None:
    """What the audit finds in the frame's object; an object gone since validation is rejected."""
    try:
        data = ctx.store.get_bytes(frame.object_key)
    except ObjectNotFoundError:
        return Rejection(
            "object_missing", f"no object at {frame.object_key} (gone after validation)"
        )
    except ObjectCorruptError as exc:
        return Rejection("hash_mismatch", str(exc))
    # The bytes audited must be the bytes validated and later published.
    return check_bytes(data, frame.frame_id, frame.size_bytes) or _finding(
        scanner, data, thresholds
    )


def _finding(scanner: Scanner, data: bytes, thresholds: tuple[float, float]) -> Rejection | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return Rejection("undecodable", "OpenCV could not decode the frame for the privacy audit")
    faces, plates = scanner.find(np.asarray(image, np.uint8), thresholds=thresholds)
    for kind, found in (("face", faces), ("plate", plates)):
        if len(found.scores):
            best = int(np.argmax(found.scores))
            x1, y1, x2, y2 = (round(v) for v in found.boxes[best].tolist())
            return Rejection(
                f"unblurred_{kind}",
                f"{len(found.scores)} {kind}(s) visible, best score {found.scores[best]:.2f} "
                f"at [{x1}, {y1}, {x2 - x1}, {y2 - y1}]",
            )
    return None
