"""Closing epochs on the catalog (SQLite and PostgreSQL): allocation, proofs, the ledger's checks,
refusals, determinism across insertion order, carry-over and fleet splits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from ingest.catalog import Frame, FrameState
from ingest.db import Catalog
from rewards.close import ClosedEpoch, close_epoch
from rewards.demo import close_demo_epoch
from rewards.epochs import Epoch
from rewards.errors import EpochError
from rewards.fleet import set_fleet_split
from rewards.ledger import LedgerRow
from rewards.operator import public_hex
from rewards.proof import device_proof
from rewards.settings import RewardParams
from rewards.verify import verify_ledger
from tests.ingest_helpers import catalog_at
from tests.rewards_helpers import CLOSE_AT, DAY, EPOCH, Capture, drive, seed_catalog, week

KEY = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
TRUSTED = public_hex(KEY.public_key())


def close(catalog: Catalog, params: RewardParams | None = None, **options: object) -> ClosedEpoch:
    """Close the test epoch after its grace period."""
    return close_epoch(
        catalog,
        options.pop("epoch", EPOCH),  # type: ignore[arg-type]
        params or RewardParams(),
        key=KEY,
        code_version="test",
        now=options.pop("now", CLOSE_AT),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def test_close_allocates_proves_and_verifies(catalog: Catalog) -> None:
    """The pool is split exactly between the devices whose accepted frames counted; each proof
    verifies against the signed root; the ledger verifies; a second close is refused."""
    ids = seed_catalog(catalog, week())
    closed = close(catalog)
    statement = closed.record.body()["statement"]
    devices = {d["device_id"]: d for d in closed.record.body()["details"]["devices"]}
    assert set(devices) == {ids[1], ids[2]}
    assert sum(int(d["gross"]) for d in devices.values()) == int(statement["pool"]["total"])
    assert statement["frames"] == len(week()) - 11 - 15  # quarantined and earlier frames left out
    for device_id in devices:
        proof = device_proof(catalog, device_id, EPOCH)
        assert proof["verified"] and proof["recomputed_matches_ledger"]
        assert {line["segment_id"] for line in proof["segments"]} <= {"seg-a", "seg-c"}
    report = verify_ledger(catalog, trusted_key=TRUSTED, code_version="test")
    assert report.ok and report.by_kind == {"device": 3, "batch": 3, "epoch": 1}
    with pytest.raises(EpochError, match="already closed"):
        close(catalog)


def test_verify_finds_edited_records_and_a_changed_catalog(catalog: Catalog) -> None:
    """A byte changed in a stored record, or a counted frame quarantined after the close (its
    batch's record is the first to disagree), is reported as the first divergence."""
    ids = seed_catalog(catalog, week())
    close(catalog)
    frame_id = week()[0].frame_id
    with catalog.session() as session:
        session.execute(
            update(Frame).where(Frame.frame_id == frame_id).values(state=FrameState.QUARANTINED)
        )
    report = verify_ledger(catalog, trusted_key=TRUSTED, code_version="test")
    assert report.first_divergence is not None
    assert (report.first_divergence.kind, report.first_divergence.key) == ("batch", f"{ids[1]}:1")
    assert "accepted: recorded 40, recomputed 39" in report.first_divergence.problem
    with catalog.session() as session:
        session.execute(
            update(Frame).where(Frame.frame_id == frame_id).values(state=FrameState.ACCEPTED)
        )
        row = session.get(LedgerRow, 1)
        assert row is not None
        row.record = row.record.replace('"seq":1', '"seq":7')
    report = verify_ledger(catalog, trusted_key=TRUSTED, code_version="test")
    assert report.first_divergence is not None and report.first_divergence.seq == 1


def test_early_and_pending_closes_are_refused_unless_forced(sqlite_catalog: Catalog) -> None:
    """Before the grace period ends, or with frames still in the pipeline, closing needs force;
    forced, the pending frames are listed and left out, also when the ledger is verified later."""
    captures = [*week(), Capture(1, "seg-b", 5.0, EPOCH.start + DAY, state=FrameState.VALIDATED)]
    seed_catalog(sqlite_catalog, captures)
    with pytest.raises(EpochError, match="grace period"):
        close(sqlite_catalog, now=EPOCH.end + timedelta(hours=1))
    with pytest.raises(EpochError, match="still being validated"):
        close(sqlite_catalog)
    closed = close(sqlite_catalog, force=True)
    assert closed.record.body()["details"]["excluded_pending"] == [captures[-1].frame_id]
    with sqlite_catalog.session() as session:
        session.execute(
            update(Frame)
            .values(state=FrameState.ACCEPTED)
            .where(Frame.state == FrameState.VALIDATED)
        )
    assert verify_ledger(sqlite_catalog, trusted_key=TRUSTED, code_version="test").ok


def test_frames_inserted_in_any_order_give_identical_records(tmp_path: Path) -> None:
    """Two catalogs holding the same frames, written in opposite orders, close to the same bytes."""
    records = []
    for name, captures in (("one", week()), ("two", week()[::-1])):
        (tmp_path / name).mkdir()
        with catalog_at("sqlite", tmp_path / name) as catalog:
            seed_catalog(catalog, captures)
            records.append(close(catalog).record)
    assert records[0].record == records[1].record
    assert records[0].record_hash == records[1].record_hash


def test_sqlite_and_postgresql_loaders_give_identical_records(tmp_path: Path) -> None:
    """SQLAlchemy rows (SQLite) and binary COPY (PostgreSQL) load the same arrays: the records
    are the same bytes, with a missing HDOP and a frame left out at a forced close among them."""
    captures = [
        *week(),
        Capture(2, "seg-b", 3.0, EPOCH.start + 4 * DAY, hdop=None, direction="backward"),
        Capture(4, "seg-b", 5.0, EPOCH.start + DAY, state=FrameState.VALIDATED),
    ]
    records = []
    for kind in ("sqlite", "postgresql"):
        (tmp_path / kind).mkdir()
        with catalog_at(kind, tmp_path / kind) as catalog:
            seed_catalog(catalog, captures)
            records.append(close(catalog, force=True).record)
    assert records[0].body()["details"]["excluded_pending"] == [captures[-1].frame_id]
    assert records[0].record == records[1].record


def test_carry_over_cumulative_amounts_and_fleet_splits(sqlite_catalog: Catalog) -> None:
    """A device cap carries the undistributable rest into the next epoch; cumulative amounts
    add up; a fleet split set during an epoch applies from the next one; epochs close in order."""
    next_epoch = EPOCH.next()
    ids = seed_catalog(
        sqlite_catalog, [*week(), *drive(1, "seg-b", next_epoch.start + DAY, length_m=45)]
    )
    capped = RewardParams(device_cap_bp=3_000)
    during = EPOCH.start + 2 * DAY
    set_fleet_split(
        sqlite_catalog, ids[1], manager="fleet-co", split_bp=2_500, params=capped, now=during
    )
    first = close(sqlite_catalog, capped)
    with pytest.raises(EpochError, match="close in order"):
        close(sqlite_catalog, capped, epoch=Epoch(EPOCH.monday - timedelta(days=7)))
    second = close(sqlite_catalog, capped, epoch=next_epoch, now=CLOSE_AT + 14 * DAY)
    pool_1, pool_2 = (r.record.body()["statement"]["pool"] for r in (first, second))
    assert (
        int(pool_1["carried_out"])
        == int(pool_1["total"]) - 2 * int(pool_1["total"]) * 3_000 // 10_000
    )
    assert pool_2["carried_in"] == pool_1["carried_out"]
    lines = {d["device_id"]: d for d in second.record.body()["details"]["devices"]}
    earlier = {d["device_id"]: d for d in first.record.body()["details"]["devices"]}
    assert int(lines[ids[1]]["cumulative"]) == int(earlier[ids[1]]["cumulative"]) + int(
        lines[ids[1]]["gross"]
    )
    assert (
        lines[ids[2]]["gross"] == "0"
        and lines[ids[2]]["cumulative"] == earlier[ids[2]]["cumulative"]
    )
    fleet = lines[ids[1]]["payees"]["fleet_manager"]
    assert (fleet["payee"], fleet["split_bp"]) == ("fleet-co", 2_500)
    assert earlier[ids[1]]["payees"]["fleet_manager"]["split_bp"] == 0
    assert int(fleet["amount"]) + int(lines[ids[1]]["payees"]["driver"]["amount"]) == int(
        lines[ids[1]]["gross"]
    )
    assert verify_ledger(sqlite_catalog, trusted_key=TRUSTED, code_version="test").ok
    with sqlite_catalog.session() as session:
        kinds = session.scalars(select(LedgerRow.kind).order_by(LedgerRow.seq)).all()
    assert kinds.count("epoch") == 2 and "fleet_split" in kinds


def test_demo_epoch_closes_once_and_proves_every_driver(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """The demo's close picks the week of the newest frames, draws both charts, checks every
    driver's proof, and a second call reports the same record instead of closing again."""
    seed_catalog(sqlite_catalog, week())
    first = close_demo_epoch(sqlite_catalog, tmp_path, now=CLOSE_AT, code_version="test")
    assert first["epoch"] == EPOCH.key and len(first["charts"]) == 2
    assert list(first["proofs_verified"].values()) == [True, True]
    again = close_demo_epoch(sqlite_catalog, tmp_path, now=CLOSE_AT, code_version="test")
    assert again["record_hash"] == first["record_hash"] and again["charts"] == []
