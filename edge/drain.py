"""The privacy stage of live capture: raw candidates out of the queue, anonymized keyframes into
the spool, exactly as `edge process` writes them, as fast as the device allows.

Fail closed: a raw frame that cannot be opened (damaged, wrong key) or checked by the detectors is
dropped with the reason and never written. A full disk leaves the candidate queued for later.
Each step is recorded before the next, so a kill at any instant loses nothing: a candidate whose
keyframe was spooled but not yet marked is recognised by its (sequence, frame) and just marked.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from edge.anonymize import Anonymizer
from edge.keyframes import Candidate
from edge.process import Taken, spool_keyframe
from edge.quota import InFlight
from edge.rawcrypt import RawCipher, U8Image
from edge.rawqueue import RawCandidate, RawSpool
from edge.spool import SpoolError

log = logging.getLogger(__name__)


@dataclass
class DrainReport:
    """What the privacy stage did with the candidates it took."""

    keyframes: int = 0
    already_spooled: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    write_failures: int = 0
    anonymize_s: float = 0.0


class Drainer:
    """Takes one ready candidate at a time (on its own thread, with its own spool connection)."""

    def __init__(
        self,
        spool: RawSpool,
        cipher: RawCipher,
        anonymizer: Anonymizer,
        in_flight: InFlight | None = None,
    ) -> None:
        self.spool = spool
        self.cipher = cipher
        self.anonymizer = anonymizer
        self.in_flight = in_flight or InFlight()
        self.report = DrainReport()
        self.last_error: str | None = None

    def drain_one(self) -> bool:
        """Process the oldest ready candidate; False if none is ready or the spool cannot take
        it now (the caller waits before trying again)."""
        candidate = self.spool.next_ready()
        if candidate is None:
            return False
        self.in_flight.set(candidate.id)
        try:
            return self._process(candidate)
        finally:
            self.in_flight.set(None)

    def _process(self, candidate: RawCandidate) -> bool:
        if self.spool.has_source(candidate.sequence_id, candidate.source_frame):
            self.report.already_spooled += 1
            self.spool.settle(candidate, "done", "already in the spool")
            return True
        blob = self.spool.raw_blob(candidate)
        image = (
            "its raw frame is missing" if blob is None else self.cipher.open(blob, candidate.label)
        )
        if isinstance(image, str):
            return self._drop(candidate, image)
        try:
            outcome = spool_keyframe(
                self._taken(candidate, image),
                self.anonymizer,
                self.spool,
                horizon=self.spool.trip_horizon(candidate.sequence_id),
            )
        except SpoolError as exc:
            # A full disk: the candidate stays queued, its frame sealed, until there is room.
            self.report.write_failures += 1
            self._error(str(exc))
            return False
        if isinstance(outcome, str):
            return self._drop(candidate, f"unusable: {outcome}")
        self.report.keyframes += outcome
        self.report.already_spooled += not outcome
        self.spool.settle(candidate, "done")
        return True

    def _taken(self, candidate: RawCandidate, image: U8Image) -> Taken:
        index = candidate.source_frame
        plan = Candidate(index, index, candidate.travelled_m, candidate.position)
        return Taken(
            image,
            candidate.pose,
            datetime.fromisoformat(candidate.capture_time),
            candidate.sequence_id,
            plan,
            index,
        )

    def _drop(self, candidate: RawCandidate, reason: str) -> bool:
        self.report.dropped[reason] += 1
        self.spool.settle(candidate, "dropped", reason)
        self.spool.record_event(
            "unusable", f"{candidate.sequence_id} frame {candidate.source_frame}: {reason}"
        )
        return True

    def _error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("%s", message)
            self.spool.record_event("error", message)
        self.last_error = message
