"""Closing an epoch: bring the ledger up to date, score and allocate, sign, append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ingest.db import Catalog
from rewards.arrays import EpochFrames, SegmentTable
from rewards.canonical import canonical_json
from rewards.epochs import Epoch, received_before
from rewards.errors import EpochError
from rewards.inputs import load_frames, load_history, load_segments, pending_frames
from rewards.ledger import StoredRecord, append, make_record, read_ledger, recorded_keys
from rewards.operator import public_hex, sign_epoch
from rewards.record import EpochContext, context_for, epoch_body
from rewards.scoring import Scores, score_epoch
from rewards.settings import RewardParams
from rewards.sync import sync_ledger

KIND = "epoch"


@dataclass(frozen=True)
class Computed:
    """An epoch's body and what it was computed from (charts and proofs use the rest)."""

    body: dict[str, Any]
    scores: Scores
    frames: EpochFrames
    segments: SegmentTable


def compute(catalog: Catalog, ctx: EpochContext, excluded: list[str]) -> Computed:
    """Score and allocate one epoch from the catalog."""
    with catalog.session() as session:
        segments = load_segments(session)
        frames = load_frames(
            session, ctx.epoch, ctx.received_before, segments, excluded=frozenset(excluded)
        )
        history = load_history(session, ctx.epoch, ctx.received_before, segments)
    scores = score_epoch(frames, history, segments, ctx.params, ctx.epoch)
    body = epoch_body(ctx, frames, scores, excluded=excluded)
    return Computed(body, scores, frames, segments)


@dataclass(frozen=True)
class ClosedEpoch:
    """A closed epoch's record and its computation."""

    record: StoredRecord
    computed: Computed
    synced: int


def close_epoch(
    catalog: Catalog,
    epoch: Epoch,
    params: RewardParams,
    *,
    key: Ed25519PrivateKey,
    code_version: str,
    now: datetime,
    force: bool = False,
) -> ClosedEpoch:
    """Append `epoch`'s signed result; refused if closed already, before its grace period ends or
    while its frames are still in the pipeline (unless `force`: those are then left out)."""
    with catalog.session() as session:
        if epoch.key in recorded_keys(session, KIND):
            msg = f"epoch {epoch.key} is already closed: see `roadswarm rewards proof DEVICE {epoch.key}`"
            raise EpochError(msg)
    cutoff = received_before(epoch, params.grace_period_h, now, force=force)
    with catalog.session() as session:
        pending = pending_frames(session, epoch, cutoff)
    if pending and not force:
        msg = (
            f"{len(pending)} frames of epoch {epoch.key} are still being validated, audited or"
            " matched: wait for the workers (`roadswarm ops status`), or pass --force to leave them out"
        )
        raise EpochError(msg)
    synced = sync_ledger(catalog, now)
    with catalog.session() as session:
        records = read_ledger(session)
    ctx = context_for(
        records,
        epoch,
        params,
        received_before=cutoff,
        code_version=code_version,
        operator_key=public_hex(key.public_key()),
    )
    computed = compute(catalog, ctx, pending)
    record = make_record(
        seq=len(records),
        kind=KIND,
        key=epoch.key,
        prev=ctx.ledger_head,
        recorded_at=now,
        body=computed.body,
        signature=sign_epoch(key, canonical_json(computed.body["statement"])),
    )
    append(catalog, [record], expected_head=ctx.ledger_head)
    return ClosedEpoch(record, computed, synced)


def epoch_summary(record: StoredRecord) -> dict[str, Any]:
    """What a person or a script wants to know about a closed epoch."""
    body = record.body()
    statement, details = body["statement"], body["details"]
    paid = [d for d in details["devices"] if int(d["gross"]) > 0]
    return {
        "epoch": statement["epoch"],
        "seq": record.seq,
        "record_hash": record.record_hash,
        "frames": statement["frames"],
        "devices_paid": len(paid),
        "pool": statement["pool"],
        "input_root": statement["input_root"],
        "allocation_root": statement["allocation_root"],
        "params_sha256": statement["params_sha256"],
        "excluded_pending": len(details["excluded_pending"]),
        "allocations": {d["device_id"]: d["gross"] for d in paid},
    }
