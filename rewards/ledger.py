"""The ledger: append-only, hash-chained records in canonical JSON, kept in the catalog.

Each row stores the record exactly as hashed: an envelope {format, seq, kind, key, prev,
recorded_at, body, signature} in canonical JSON, and record_hash = SHA-256 over a domain tag and
those bytes. `prev` is the previous record's hash, so changing any stored byte breaks the chain at
that record, and an epoch's signed body names the head it was appended to. The table is created
by the catalog's migration 0003.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.catalog import Base
from ingest.db import Catalog
from rewards.canonical import canonical_json, tagged_sha256
from rewards.errors import LedgerError

RECORD_DOMAIN = b"roadswarm-ledger-record-v1"
GENESIS = "0" * 64
LEDGER_FORMAT = 1


class LedgerRow(Base):
    """One ledger record as stored; rows are only ever inserted."""

    __tablename__ = "ledger_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(200))
    record: Mapped[str] = mapped_column(Text)
    record_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ledger_records_kind_key", "kind", "record_key", unique=True),
        Index("ledger_records_hash", "record_hash", unique=True),
    )


@dataclass(frozen=True)
class StoredRecord:
    """A row as read back, before any check."""

    seq: int
    kind: str
    key: str
    record: str
    record_hash: str

    def envelope(self) -> dict[str, Any]:
        """The parsed envelope (raises ValueError on bytes that are not JSON)."""
        parsed = json.loads(self.record)
        if not isinstance(parsed, dict):
            msg = f"ledger record {self.seq} is not a JSON object"
            raise ValueError(msg)
        return parsed

    def body(self) -> dict[str, Any]:
        """The record's body."""
        body: dict[str, Any] = self.envelope()["body"]
        return body


def record_hash(record_bytes: bytes) -> str:
    """The hash a record is chained by."""
    return tagged_sha256(RECORD_DOMAIN, record_bytes).hex()


def make_record(
    *,
    seq: int,
    kind: str,
    key: str,
    prev: str,
    recorded_at: datetime,
    body: dict[str, Any],
    signature: str | None = None,
) -> StoredRecord:
    """A new record chained onto `prev`."""
    envelope = {
        "format": LEDGER_FORMAT,
        "seq": seq,
        "kind": kind,
        "key": key,
        "prev": prev,
        "recorded_at": recorded_at.isoformat(),
        "body": body,
        "signature": signature,
    }
    data = canonical_json(envelope)
    return StoredRecord(seq, kind, key, data.decode("ascii"), record_hash(data))


def read_ledger(session: Session) -> list[StoredRecord]:
    """Every record in chain order."""
    rows = session.scalars(select(LedgerRow).order_by(LedgerRow.seq))
    return [StoredRecord(r.seq, r.kind, r.record_key, r.record, r.record_hash) for r in rows]


def head(session: Session) -> tuple[int, str]:
    """The next sequence number and the hash new records chain onto."""
    last = session.scalars(select(LedgerRow).order_by(LedgerRow.seq.desc()).limit(1)).first()
    return (0, GENESIS) if last is None else (last.seq + 1, last.record_hash)


def recorded_keys(session: Session, kind: str) -> set[str]:
    """Keys of the records of one kind (what is already in the ledger)."""
    return set(session.scalars(select(LedgerRow.record_key).where(LedgerRow.kind == kind)))


def append(catalog: Catalog, records: list[StoredRecord], *, expected_head: str) -> None:
    """Insert records chained onto `expected_head`, in one transaction; refused if anything was
    appended since they were made (the caller builds them again)."""
    if not records:
        return
    try:
        with catalog.session() as session:
            _, current = head(session)
            if current != expected_head:
                msg = "the ledger changed while these records were prepared: run the command again"
                raise LedgerError(msg)
            for record in records:
                session.add(
                    LedgerRow(
                        seq=record.seq,
                        kind=record.kind,
                        record_key=record.key,
                        record=record.record,
                        record_hash=record.record_hash,
                    )
                )
    except IntegrityError as exc:
        msg = f"another process appended to the ledger at the same time ({exc.orig}): run the command again"
        raise LedgerError(msg) from exc


def chain(
    start: tuple[int, str], items: list[tuple[str, str, dict[str, Any]]], recorded_at: datetime
) -> list[StoredRecord]:
    """Records for (kind, key, body) items, each chained onto the one before."""
    seq, prev = start
    records = []
    for kind, key, body in items:
        record = make_record(
            seq=seq, kind=kind, key=key, prev=prev, recorded_at=recorded_at, body=body
        )
        records.append(record)
        seq, prev = seq + 1, record.record_hash
    return records
