"""Closing an epoch: bring the ledger up to date, score and allocate, sign, append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from ingest.db import Catalog
from rewards.arrays import EpochFrames, SegmentTable
from rewards.binload import load_summary
from rewards.binrows import frames_input_root
from rewards.binsummary import layout_hash, refresh_bins, summary_layout
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
# "auto": the summary where it serves (rebuilt if its layout changed); "current": only if it was
# built for these parameters (verify must not rebuild it for every old epoch); "frames": never.
Source = Literal["auto", "current", "frames"]


@dataclass(frozen=True)
class Computed:
    """An epoch's body and what it was computed from (charts and proofs use the rest)."""

    body: dict[str, Any]
    scores: Scores
    frames: EpochFrames
    segments: SegmentTable


def _from_frames(session: Session, ctx: EpochContext, excluded: list[str]) -> Computed:
    """The reference path: every counted frame read and scored."""
    segments = load_segments(session)
    frames = load_frames(
        session, ctx.epoch, ctx.received_before, segments, excluded=frozenset(excluded)
    )
    history = load_history(session, ctx.epoch, ctx.received_before, segments)
    scores = score_epoch(frames, history, segments, ctx.params, ctx.epoch)
    root, _ = frames_input_root(frames, segments, ctx.params)
    body = epoch_body(ctx, scores, input_root=root, excluded=excluded)
    return Computed(body, scores, frames, segments)


def _from_summary(session: Session, ctx: EpochContext) -> Computed:
    """The per-bin summary's rows scored (callers refreshed it first)."""
    segments = load_segments(session)
    inputs = load_summary(session, ctx.epoch, segments, ctx.params)
    scores = score_epoch(
        inputs.frames,
        inputs.history,
        segments,
        ctx.params,
        ctx.epoch,
        keys=inputs.keys,
        frame_count=inputs.frame_count,
    )
    body = epoch_body(ctx, scores, input_root=inputs.input_root, excluded=[])
    return Computed(body, scores, inputs.frames, segments)


def summary_serves(ctx: EpochContext, excluded: list[str]) -> bool:
    """Whether the summary holds exactly this epoch's inputs: it splits uploads by each epoch's
    own cutoff, so a forced close (an earlier cutoff, frames left out by id) reads the frames."""
    natural = ctx.received_before == ctx.epoch.closable_at(ctx.params.grace_period_h)
    return natural and not excluded


def compute(
    catalog: Catalog, ctx: EpochContext, excluded: list[str], *, source: Source = "auto"
) -> Computed:
    """Score and allocate one epoch from the catalog: from the per-bin summary where it serves
    (brought up to date first), else from every frame (see `Source`)."""
    if source != "frames" and summary_serves(ctx, excluded):
        if source == "current":
            with catalog.session() as session:
                current = summary_layout(session) == layout_hash(ctx.params)
        if source == "auto" or current:
            refresh_bins(catalog, ctx.params)
            with catalog.session() as session:
                return _from_summary(session, ctx)
        with catalog.session() as session:
            return _from_summary(session, ctx)
    with catalog.session() as session:
        return _from_frames(session, ctx, excluded)


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
