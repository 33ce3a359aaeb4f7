"""Emptying the spool into the ingest API: seal, upload, commit, and remember each step.

Every step is recorded in the spool before the next begins, so a run killed at any instant is
finished by the next one: a keyframe marked uploaded is not sent again, one sent but not marked is
recognised by the server (`already_uploaded`), and a batch committed but not marked gets its
receipt again. A keyframe leaves the spool only after its batch's commit is acknowledged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from edge.client import IngestClient, RequestRefusedError, ServerUnreachableError
from edge.earnings import refresh_earnings
from edge.errors import EdgeError
from edge.spool import Spool
from ingest.protocol import SignedManifest, UploadItem

log = logging.getLogger(__name__)
TICKETS_PER_REQUEST = 20  # tickets expire: ask for a few at a time on a slow uplink
REGISTERED_AT = "registered_at"


class UploadStoppedError(EdgeError):
    """The server refused this device or a batch for good; an operator must look."""


@dataclass
class UploadReport:
    """What one run did."""

    batches_sealed: int = 0
    batches_committed: int = 0
    frames_uploaded: int = 0
    frames_already_there: int = 0
    frames_committed: int = 0
    retry_later: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


def upload_spool(
    spool: Spool, client: IngestClient, *, max_batch_frames: int = 200
) -> UploadReport:
    """Seal what is ready, then send every sealed batch, oldest first."""
    started = time.perf_counter()
    report = UploadReport()
    try:
        _ensure_registered(spool, client)
        while spool.seal_batch(client.identity, max_frames=max_batch_frames) is not None:
            report.batches_sealed += 1
        for signed in spool.sealed_batches():
            _send_batch(spool, client, signed, report)
        refresh_earnings(spool, client)
    except ServerUnreachableError as exc:
        spool.record_event("error", str(exc))
        report.retry_later.append(str(exc))
    except RequestRefusedError as exc:
        spool.record_event("error", str(exc))
        raise UploadStoppedError(str(exc)) from exc
    finally:
        report.seconds = round(time.perf_counter() - started, 3)
    return report


def _ensure_registered(spool: Spool, client: IngestClient) -> None:
    if spool.get_value(REGISTERED_AT) == client.api_url:
        return
    client.register()
    spool.set_value(REGISTERED_AT, client.api_url)


def _send_batch(
    spool: Spool, client: IngestClient, signed: SignedManifest, report: UploadReport
) -> None:
    counter = signed.manifest.counter
    states = spool.batch_keyframes(counter)
    pending = [entry for entry in signed.manifest.frames if states.get(entry.frame_id) == "ready"]
    for start in range(0, len(pending), TICKETS_PER_REQUEST):
        group = pending[start : start + TICKETS_PER_REQUEST]
        items = [UploadItem(frame_id=e.frame_id, size_bytes=e.size_bytes) for e in group]
        for ticket in client.tickets(items):
            if ticket.already_uploaded:
                report.frames_already_there += 1
            else:
                client.upload(ticket, spool.keyframe_bytes(ticket.frame_id))
                report.frames_uploaded += 1
            spool.mark_uploaded([ticket.frame_id])
    try:
        receipt = client.commit(signed)
    except RequestRefusedError as exc:
        if exc.code != "BatchRejectedError":
            raise
        # The server lacks some objects after all (deleted, corrupted): send them all again.
        spool.mark_uploaded(list(states), uploaded=False)
        spool.record_event("error", str(exc))
        report.retry_later.append(str(exc))
        return
    spool.mark_committed(counter)
    report.batches_committed += 1
    report.frames_committed += receipt.frames
    log.info("batch %d committed (%d frames)", counter, receipt.frames)
