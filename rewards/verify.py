"""`ledger verify`: the chain, every signature, and every record recomputed from the catalog.

`check_chain` needs only the stored rows (a copy of the ledger can be checked anywhere);
`verify_ledger` also recomputes each registration, batch and epoch from the catalog and reports the
first record that no longer agrees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.db import Catalog
from rewards.canonical import canonical_json
from rewards.close import Source
from rewards.ledger import GENESIS, StoredRecord, read_ledger, record_hash
from rewards.operator import epoch_signature_valid
from rewards.recompute import recompute_problem


@dataclass(frozen=True)
class Divergence:
    """The first record that failed a check, and what was wrong."""

    seq: int
    kind: str
    key: str
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    """What `ledger verify` found."""

    ok: bool
    records: int
    by_kind: dict[str, int]
    first_divergence: Divergence | None
    notes: list[str] = field(default_factory=list)


def _epoch_problem(envelope: dict[str, Any], prev: str, trusted_key: str | None) -> str | None:
    statement = envelope["body"]["statement"]
    details = envelope["body"]["details"]
    if statement["ledger_head"] != prev:
        return "the signed statement names another ledger head than the record it follows"
    if hashlib.sha256(canonical_json(details)).hexdigest() != statement["details_sha256"]:
        return "the details do not match the hash in the signed statement"
    if trusted_key and statement["operator_key"] != trusted_key:
        return f"signed by {statement['operator_key'][:16]}..., not by the trusted operator key"
    if not epoch_signature_valid(
        statement["operator_key"], canonical_json(statement), envelope["signature"] or ""
    ):
        return "the operator's signature does not match the statement"
    return None


def _record_problem(
    record: StoredRecord, index: int, prev: str, trusted_key: str | None
) -> str | None:
    """What is wrong with one stored record on its own and as the chain's next link."""
    if record.seq != index:
        return f"sequence number {record.seq} where {index} was expected (a record was removed or inserted)"
    data = record.record.encode()
    if record_hash(data) != record.record_hash:
        return "its hash does not match its contents (the record or its hash was changed)"
    try:
        envelope = record.envelope()
        if canonical_json(envelope) != data:
            return "it is not in canonical form (it was edited)"
        if (envelope["seq"], envelope["kind"], envelope["key"]) != (
            record.seq,
            record.kind,
            record.key,
        ):
            return "its columns disagree with the record they index"
        if envelope["prev"] != prev:
            return "it does not chain onto the previous record"
        if record.kind == "epoch":
            return _epoch_problem(envelope, prev, trusted_key)
    except (ValueError, KeyError, TypeError) as exc:
        return f"it is malformed ({type(exc).__name__}: {exc})"
    return None


def _recorded_at(record: StoredRecord) -> datetime | str:
    """When a record says it was recorded, or what is wrong with that field."""
    try:
        moment = datetime.fromisoformat(record.envelope()["recorded_at"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"its time is malformed ({exc})"
    return moment if moment.tzinfo is not None else "its time has no time zone"


def check_chain(records: list[StoredRecord], trusted_key: str | None = None) -> Divergence | None:
    """The first record that breaks the chain or carries a bad signature; None if all hold."""
    prev = GENESIS
    last_time: datetime | None = None
    for index, record in enumerate(records):
        problem = _record_problem(record, index, prev, trusted_key)
        if problem is None:
            recorded_at = _recorded_at(record)
            if isinstance(recorded_at, str):
                problem = recorded_at
            elif last_time is not None and recorded_at < last_time:
                problem = "it was recorded before the record it follows"
            else:
                last_time = recorded_at
        if problem is not None:
            return Divergence(record.seq, record.kind, record.key, problem)
        prev = record.record_hash
    return None


def verify_ledger(
    catalog: Catalog, *, trusted_key: str | None, code_version: str, source: Source = "current"
) -> VerifyReport:
    """Check the chain and signatures, then recompute every record from the catalog (epochs from
    the per-bin summary where it serves, or from every frame with `source` "frames")."""
    with catalog.session() as session:
        records = read_ledger(session)
    counts: dict[str, int] = {}
    for record in records:
        counts[record.kind] = counts.get(record.kind, 0) + 1
    notes = (
        []
        if trusted_key
        else ["no trusted operator key given: signatures checked against the key each epoch names"]
    )
    divergence = check_chain(records, trusted_key)
    if divergence is None:
        for index, record in enumerate(records):
            problem = recompute_problem(catalog, records, index, code_version, notes, source=source)
            if problem is not None:
                divergence = Divergence(record.seq, record.kind, record.key, problem)
                break
    return VerifyReport(divergence is None, len(records), counts, divergence, notes)
