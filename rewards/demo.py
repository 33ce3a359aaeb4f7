"""The demo's epoch: its virtual drivers' accepted, matched frames rewarded and proven."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from rewards.charts import write_charts
from rewards.close import KIND, close_epoch, epoch_summary
from rewards.epochs import Epoch
from rewards.ledger import LedgerRow, StoredRecord
from rewards.operator import PRIVATE_KEY, create_operator_key, load_operator_key
from rewards.proof import device_proof
from rewards.settings import RewardParams


def _closed(catalog: Catalog, epoch: Epoch) -> StoredRecord | None:
    with catalog.session() as session:
        row = session.scalars(
            select(LedgerRow).where(LedgerRow.kind == KIND, LedgerRow.record_key == epoch.key)
        ).first()
        return (
            None
            if row is None
            else StoredRecord(row.seq, row.kind, row.record_key, row.record, row.record_hash)
        )


def _latest_capture(catalog: Catalog) -> datetime | None:
    """When the newest accepted frame was captured (the drives' epoch, even just after midnight
    on a Monday)."""
    with catalog.session() as session:
        return session.scalar(
            select(func.max(Frame.capture_time)).where(Frame.state == FrameState.ACCEPTED)
        )


def close_demo_epoch(
    catalog: Catalog, workdir: Path, *, now: datetime, code_version: str
) -> dict[str, Any]:
    """Close the epoch the demo's newest frames fall in (forced: its week has not ended), with an operator
    key kept in `workdir/operator`, charts in `workdir/rewards/EPOCH/`; a re-run in the same week
    reports the epoch closed the first time. Returns the summary and each driver's proof check."""
    key_dir = workdir / "operator"
    if not (key_dir / PRIVATE_KEY).exists():
        create_operator_key(key_dir)
    epoch = Epoch.containing(_latest_capture(catalog) or now)
    record = _closed(catalog, epoch)
    charts: list[Path] = []
    if record is None:
        closed = close_epoch(
            catalog,
            epoch,
            RewardParams(),
            key=load_operator_key(key_dir),
            code_version=code_version,
            now=now,
            force=True,
        )
        record = closed.record
        charts = write_charts(catalog, closed.computed, workdir / "rewards" / epoch.key)
    summary = epoch_summary(record)
    summary["charts"] = [str(path) for path in charts]
    summary["proofs_verified"] = {
        device: device_proof(catalog, device, epoch)["verified"]
        for device in summary["allocations"]
    }
    return summary
