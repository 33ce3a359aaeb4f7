"""A device's earnings as the ingest API serves them to the device: its line of every closed
epoch, read from the signed ledger records (nothing recomputed), with its inclusion proof."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.protocol import DeviceEarnings, EarningLine, EpochEarning
from rewards.ledger import LedgerRow, StoredRecord
from rewards.merkle import inclusion_proof
from rewards.record import ALLOCATION_TAG, allocation_leaf

DECIMALS = 9
EPOCH_KIND = "epoch"


def epoch_records(session: Session) -> list[StoredRecord]:
    """Every closed epoch's ledger record, oldest first."""
    rows = session.scalars(
        select(LedgerRow).where(LedgerRow.kind == EPOCH_KIND).order_by(LedgerRow.seq)
    ).all()
    return [StoredRecord(r.seq, r.kind, r.record_key, r.record, r.record_hash) for r in rows]


def _earning(record: StoredRecord, device_id: str) -> EpochEarning | None:
    envelope = record.envelope()
    statement, details = envelope["body"]["statement"], envelope["body"]["details"]
    entries: list[dict[str, Any]] = details["devices"]
    index = next((i for i, e in enumerate(entries) if e["device_id"] == device_id), None)
    if index is None:
        return None
    entry = entries[index]
    leaves = [allocation_leaf(statement["epoch"], e) for e in entries]
    manager = entry["payees"]["fleet_manager"]
    return EpochEarning(
        epoch=statement["epoch"],
        gross=entry["gross"],
        cumulative=entry["cumulative"],
        driver=entry["payees"]["driver"]["amount"],
        fleet_manager=manager["amount"],
        fleet_manager_payee=manager["payee"],
        split_bp=manager["split_bp"],
        allocations=[EarningLine.model_validate(line) for line in entry["allocations"]],
        allocation_root=statement["allocation_root"],
        leaf_index=index,
        proof=[
            {"side": s.side, "sibling": s.sibling}
            for s in inclusion_proof(ALLOCATION_TAG, leaves, index)
        ],
        record_hash=record.record_hash,
        operator_key=statement["operator_key"],
        signature=envelope["signature"] or "",
    )


def device_earnings(session: Session, device_id: str, *, last: int = 12) -> DeviceEarnings:
    """The device's lines of the `last` closed epochs (newest first) and its totals."""
    records = epoch_records(session)
    lines = [e for r in records if (e := _earning(r, device_id)) is not None]
    newest = lines[::-1]
    return DeviceEarnings(
        device_id=device_id,
        decimals=DECIMALS,
        epochs_closed=len(records),
        last_closed_epoch=records[-1].key if records else None,
        total_gross=newest[0].cumulative if newest else "0",
        total_driver=str(sum(int(e.driver) for e in lines)),
        epochs=newest[:last],
    )
