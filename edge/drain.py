"""The privacy stage of live capture: raw candidates out of the queue, anonymized keyframes into
the spool, exactly as `edge process` writes them, as fast as the device allows.

The oldest ready candidates are taken a few at a time (`Anonymizer.frames_at_once`, one per usable
core by default) and anonymized on threads at once, as `edge process` does; the spool is written
only by the calling thread, in queue order, so the spool holds what one at a time would write.

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
from edge.inorder import InOrder
from edge.keyframes import Candidate
from edge.process import Packaged, Taken, package_keyframe
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


@dataclass(frozen=True)
class _Job:
    """A candidate taken from the queue: what to anonymize, or what was settled without that."""

    candidate: RawCandidate
    taken: Taken | None = None
    horizon: float | None = None
    dropped: str | None = None
    """Why it is dropped without being anonymized (its raw frame missing or unreadable)."""
    spooled: bool = False
    """Its keyframe was spooled before a kill: it is only marked done."""


class Drainer:
    """Takes the oldest ready candidates, a few at a time (on its own thread, with its own spool
    connection), anonymizes them at once and spools them in order."""

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

    def drain_some(self) -> bool:
        """Process the oldest ready candidates (up to the frames the anonymizer takes at once);
        False if none is ready or the spool cannot take one now (the caller waits before trying
        again; candidates after the one the spool refused stay queued)."""
        candidates = self.spool.ready(max(1, self.anonymizer.frames_at_once))
        if not candidates:
            return False
        self.in_flight.set(candidate.id for candidate in candidates)
        try:
            with InOrder(self._package, len(candidates)) as work:
                done = [result for c in candidates for result in work.put(self._job(c))]
                done += work.finish()
            return all(self._settle(job, packaged) for job, packaged in done)
        finally:
            self.in_flight.set(())

    def _job(self, candidate: RawCandidate) -> _Job:
        """Open the candidate's sealed frame (on the calling thread: it reads the spool)."""
        if self.spool.has_source(candidate.sequence_id, candidate.source_frame):
            return _Job(candidate, spooled=True)
        blob = self.spool.raw_blob(candidate)
        image = (
            "its raw frame is missing" if blob is None else self.cipher.open(blob, candidate.label)
        )
        if isinstance(image, str):
            return _Job(candidate, dropped=image)
        horizon = self.spool.trip_horizon(candidate.sequence_id)
        return _Job(candidate, self._taken(candidate, image), horizon)

    def _package(self, job: _Job) -> tuple[_Job, Packaged | str | None]:
        """Anonymize and package the job's keyframe (on a worker thread: no spool access)."""
        if job.taken is None:
            return job, None
        return job, package_keyframe(job.taken, self.anonymizer, horizon=job.horizon)

    def _settle(self, job: _Job, packaged: Packaged | str | None) -> bool:
        """Write the outcome of one job; False when the spool cannot take its keyframe now."""
        candidate = job.candidate
        if job.spooled:
            self.report.already_spooled += 1
            self.spool.settle(candidate, "done", "already in the spool")
            return True
        if job.dropped is not None:
            return self._drop(candidate, job.dropped)
        if isinstance(packaged, str):
            return self._drop(candidate, f"unusable: {packaged}")
        assert packaged is not None  # a job with a frame always has an outcome
        try:
            added = self.spool.add(packaged.record, packaged.data)
        except SpoolError as exc:
            # A full disk: the candidate stays queued, its frame sealed, until there is room.
            self.report.write_failures += 1
            self._error(str(exc))
            return False
        self.report.keyframes += added
        self.report.already_spooled += not added
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
