"""A driver's proof for one epoch: their allocation, where it came from, and that it is in the
signed allocation root."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np

from ingest.db import Catalog
from rewards.canonical import canonical_json
from rewards.close import Computed
from rewards.epochs import Epoch
from rewards.errors import EpochError
from rewards.ledger import StoredRecord, read_ledger
from rewards.merkle import ProofStep, inclusion_proof, root_from_proof
from rewards.operator import epoch_signature_valid
from rewards.recompute import recompute_epoch
from rewards.record import ALLOCATION_TAG, allocation_leaf


def _epoch_record(records: list[StoredRecord], epoch: Epoch) -> int:
    for index, record in enumerate(records):
        if record.kind == "epoch" and record.key == epoch.key:
            return index
    msg = f"epoch {epoch.key} is not closed: run `roadswarm rewards epoch close {epoch.key}` first"
    raise EpochError(msg)


def segment_breakdown(computed: Computed, device_id: str) -> list[dict[str, Any]]:
    """Per segment and direction: the device's bins, best rank and points per reason."""
    if device_id not in computed.scores.devices:
        return []
    passes = computed.scores.passes
    mine = passes.device == computed.scores.devices.index(device_id)
    keys = passes.segment[mine] * 2 + passes.direction[mine]
    lines = []
    for key in np.unique(keys):
        on = keys == key
        lines.append(
            {
                "segment_id": computed.segments.segment_ids[int(key) // 2],
                "direction": "forward" if key % 2 == 0 else "backward",
                "bins": int(on.sum()),
                "best_rank": int(passes.rank[mine][on].min()) + 1,
                "coverage": round(float(passes.coverage[mine][on].sum()), 3),
                "first_capture": round(float(passes.bonus[mine][on].sum()), 3),
                "bounty": round(float(passes.bounty[mine][on].sum()), 3),
            }
        )
    return lines


def device_proof(catalog: Catalog, device_id: str, epoch: Epoch) -> dict[str, Any]:
    """The device's allocation, per-segment breakdown and inclusion proof for `epoch`."""
    with catalog.session() as session:
        records = read_ledger(session)
    index = _epoch_record(records, epoch)
    record = records[index]
    envelope = record.envelope()
    statement, details = envelope["body"]["statement"], envelope["body"]["details"]
    entries = details["devices"]
    position = next((i for i, e in enumerate(entries) if e["device_id"] == device_id), None)
    if position is None:
        msg = f"device {device_id} has no allocation in epoch {epoch.key}: no frame of it counted then or before"
        raise EpochError(msg)
    leaves = [allocation_leaf(epoch.key, e) for e in entries]
    computed = recompute_epoch(catalog, records, index)
    proof = {
        "epoch": epoch.key,
        "device_id": device_id,
        "allocation": entries[position],
        "leaf": leaves[position].decode(),
        "proof": [asdict(step) for step in inclusion_proof(ALLOCATION_TAG, leaves, position)],
        "statement": statement,
        "signature": envelope["signature"],
        "record_hash": record.record_hash,
        "segments": segment_breakdown(computed, device_id),
        "recomputed_matches_ledger": computed.body == envelope["body"],
    }
    proof["verified"] = verify_proof(proof)
    return proof


def verify_proof(proof: dict[str, Any], trusted_key: str | None = None) -> bool:
    """Whether the leaf leads to the statement's allocation root and the operator signed it."""
    statement = proof["statement"]
    if trusted_key and statement["operator_key"] != trusted_key:
        return False
    steps = [ProofStep(s["side"], s["sibling"]) for s in proof["proof"]]
    leaf = proof["leaf"].encode()
    try:
        claimed = json.loads(leaf)
        root = root_from_proof(ALLOCATION_TAG, leaf, steps).hex()
    except ValueError:
        return False
    if (claimed.get("epoch"), claimed.get("device_id")) != (statement["epoch"], proof["device_id"]):
        return False
    signed = epoch_signature_valid(
        statement["operator_key"], canonical_json(statement), proof["signature"]
    )
    return signed and root == statement["allocation_root"]
