"""Each kind of ledger record computed again from the catalog, for `ledger verify`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ingest.catalog import Batch, Device, FrameState
from ingest.db import Catalog
from rewards.close import Computed, Source, compute
from rewards.epochs import Epoch
from rewards.errors import RewardsError
from rewards.fleet import KIND as FLEET_KIND
from rewards.ledger import StoredRecord
from rewards.record import context_for
from rewards.settings import RewardParams
from rewards.sync import batch_body, batch_frames, device_body

LIST_PREVIEW = 3


def first_difference(recorded: Any, recomputed: Any, path: str = "") -> str | None:
    """Where two JSON documents first differ, as `path: recorded X, recomputed Y`."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        for key in sorted(set(recorded) | set(recomputed)):
            found = first_difference(recorded.get(key), recomputed.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(recomputed, list):
        for i, (a, b) in enumerate(zip(recorded, recomputed, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(recorded) != len(recomputed):
            return f"{path}: recorded {len(recorded)} items, recomputed {len(recomputed)}"
        return None
    if recorded != recomputed:
        return f"{path.lstrip('.')}: recorded {_short(recorded)}, recomputed {_short(recomputed)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _device_problem(catalog: Catalog, record: StoredRecord) -> str | None:
    with catalog.session() as session:
        device = session.get(Device, record.key)
        recomputed = None if device is None else device_body(device)
    if recomputed is None:
        return f"device {record.key} is no longer in the catalog"
    found = first_difference(record.body(), recomputed)
    return None if found is None else f"the catalog's registration differs: {found}"


def _batch_problem(catalog: Catalog, record: StoredRecord) -> str | None:
    device_id, counter = record.key.rsplit(":", 1)
    with catalog.session() as session:
        batch = session.scalars(
            select(Batch).where(Batch.device_id == device_id, Batch.counter == int(counter))
        ).first()
        frames = batch_frames(session, [(device_id, int(counter))]).get(
            (device_id, int(counter)), []
        )
    if batch is None:
        return f"batch {record.key} is no longer in the catalog"
    accepted = [f for f, state in frames if state == FrameState.ACCEPTED]
    found = first_difference(record.body(), batch_body(batch, accepted))
    return None if found is None else f"the catalog's batch differs: {found}"


def _fleet_problem(record: StoredRecord) -> str | None:
    envelope = record.envelope()
    recorded_at = datetime.fromisoformat(envelope["recorded_at"])
    allowed = Epoch.containing(recorded_at).next().key
    if envelope["body"]["effective_epoch"] != allowed:
        return f"a split recorded at {recorded_at} may take effect from {allowed} only"
    return None


def recompute_epoch(
    catalog: Catalog, records: list[StoredRecord], index: int, *, source: Source = "current"
) -> Computed:
    """Compute a closed epoch again, as it was closed (its parameters, cutoff and predecessors):
    from the per-bin summary where it was built for them, else (or with "frames") every frame."""
    body = records[index].body()
    statement, details = body["statement"], body["details"]
    ctx = context_for(
        records[:index],
        Epoch.parse(statement["epoch"]),
        RewardParams.from_document(details["params"]),
        received_before=datetime.fromisoformat(statement["received_before"]),
        code_version=statement["code_version"],
        operator_key=statement["operator_key"],
    )
    return compute(catalog, ctx, list(details["excluded_pending"]), source=source)


def _epoch_problem(
    catalog: Catalog,
    records: list[StoredRecord],
    index: int,
    code_version: str,
    notes: list[str],
    source: Source,
) -> str | None:
    body = records[index].body()
    statement = body["statement"]
    if RewardParams.from_document(body["details"]["params"]).sha256() != statement["params_sha256"]:
        return "the recorded parameters do not match their hash"
    if statement["code_version"] != code_version:
        notes.append(
            f"epoch {statement['epoch']} was computed by {statement['code_version']}, recomputed by {code_version}"
        )
    found = first_difference(body, recompute_epoch(catalog, records, index, source=source).body)
    return None if found is None else f"recomputed from the catalog, {found}"


def recompute_problem(
    catalog: Catalog,
    records: list[StoredRecord],
    index: int,
    code_version: str,
    notes: list[str],
    *,
    source: Source = "current",
) -> str | None:
    """What no longer agrees between record `index` and the catalog; None if it all does."""
    record = records[index]
    try:
        if record.kind == "device":
            return _device_problem(catalog, record)
        if record.kind == "batch":
            return _batch_problem(catalog, record)
        if record.kind == FLEET_KIND:
            return _fleet_problem(record)
        if record.kind == "epoch":
            return _epoch_problem(catalog, records, index, code_version, notes, source)
    except (RewardsError, KeyError, ValueError, TypeError) as exc:
        return f"it cannot be recomputed ({type(exc).__name__}: {exc})"
    return f"unknown record kind {record.kind!r}"
