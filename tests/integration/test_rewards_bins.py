"""The per-bin capture summary: the same epoch records as the frames give (random inputs), kept
current by the catalog's triggers through re-matching, quarantine and late uploads."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from ingest import tasks as ingest_tasks
from ingest.catalog import Frame, FrameState, utcnow
from ingest.db import Catalog
from ingest.queues import REWARDS_BINS_TASK, REWARDS_QUEUE, reliable_config
from ingest.states import advance
from mapbuilder.catalog import FrameMatch, save_matches
from rewards.binsummary import RewardBin, dirty_pairs, refresh_bins
from rewards.canonical import canonical_json
from rewards.close import Source, close_epoch, compute
from rewards.ledger import read_ledger
from rewards.operator import public_hex
from rewards.recompute import recompute_epoch
from rewards.record import context_for
from rewards.settings import RewardParams
from rewards.tasks import refresh_bins_task
from rewards.verify import verify_ledger
from tests.ingest_helpers import catalog_at
from tests.rewards_helpers import CLOSE_AT, DAY, EPOCH, Capture, seed_catalog, week

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
SEGMENT_IDS = ("seg-a", "seg-b", "seg-c")


def body_bytes(catalog: Catalog, params: RewardParams, source: Source) -> bytes:
    """The epoch record body computed from the summary ("auto") or from every frame."""
    ctx = context_for(
        [],
        EPOCH,
        params,
        received_before=EPOCH.closable_at(params.grace_period_h),
        code_version="test",
        operator_key="00" * 32,
    )
    return canonical_json(compute(catalog, ctx, [], source=source).body)


def summary_rows(catalog: Catalog) -> list[tuple[object, ...]]:
    """Every summary row, in key order."""
    with catalog.session() as session:
        rows = session.scalars(select(RewardBin)).all()
        return sorted(
            (
                *(r.epoch, r.counted_epoch, r.segment_id, r.direction, r.bin, r.device_id),
                *(r.frames, r.first_ms, r.last_ms, r.best_key, r.digest),
            )
            for r in rows
        )


def set_received(catalog: Catalog, delays: dict[str, timedelta], captures: list[Capture]) -> None:
    """Move some uploads later (the frame trigger marks their bins)."""
    at = {c.frame_id: c.at for c in captures}
    with catalog.session() as session:
        for frame_id, delay in delays.items():
            session.execute(
                update(Frame)
                .where(Frame.frame_id == frame_id)
                .values(received_at=at[frame_id] + delay)
            )


captures_strategy = st.lists(
    st.builds(
        Capture,
        device=st.integers(1, 4),
        segment=st.sampled_from(SEGMENT_IDS),
        offset_m=st.floats(-5.0, 130.0, allow_nan=False),
        at=st.integers(-14 * 86_400_000_000, 9 * 86_400_000_000).map(
            lambda us: EPOCH.start + timedelta(microseconds=us)
        ),
        direction=st.sampled_from(("forward", "backward")),
        distance_m=st.floats(0.0, 30.0, allow_nan=False),
        hdop=st.none() | st.floats(0.5, 10.0, allow_nan=False),
        state=st.sampled_from((FrameState.ACCEPTED, FrameState.ACCEPTED, FrameState.QUARANTINED)),
    ),
    min_size=1,
    max_size=40,
)


def paths_agree(
    kind: str, captures: list[Capture], late: list[int], bin_length_m: float, grace_h: float
) -> None:
    """Seed a fresh catalog of `kind` and compare the summary and frame paths' bodies."""
    unique = list({c.frame_id: c for c in captures}.values())
    params = RewardParams(bin_length_m=bin_length_m, grace_period_h=grace_h)
    delays = {c.frame_id: timedelta(hours=h) for c, h in zip(unique, late, strict=False)}
    with tempfile.TemporaryDirectory() as folder, catalog_at(kind, Path(folder)) as catalog:
        seed_catalog(catalog, unique, now=EPOCH.start - 60 * DAY)
        set_received(catalog, delays, unique)
        assert body_bytes(catalog, params, "auto") == body_bytes(catalog, params, "frames")


random_inputs = given(
    captures=captures_strategy,
    late=st.lists(st.integers(0, 40 * 24), max_size=10),
    bin_length_m=st.sampled_from((20.0, 7.3, 45.0)),
    grace_h=st.sampled_from((48.0, 0.0, 30.5)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@random_inputs
def test_summary_gives_the_frames_record_byte_for_byte(
    captures: list[Capture], late: list[int], bin_length_m: float, grace_h: float
) -> None:
    """On random frames (clipped offsets, missing hdop, quarantined, late uploads, earlier and
    later epochs) the summary path's epoch body is byte-identical to the frame path's (SQLite)."""
    paths_agree("sqlite", captures, late, bin_length_m, grace_h)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@random_inputs
def test_summary_gives_the_frames_record_on_postgresql(
    captures: list[Capture], late: list[int], bin_length_m: float, grace_h: float
) -> None:
    """The same on PostgreSQL, where both paths read by binary COPY."""
    paths_agree("postgresql", captures, late, bin_length_m, grace_h)


def test_both_databases_agree_and_the_close_reads_the_summary(catalog: Catalog) -> None:
    """On SQLite and PostgreSQL (binary COPY) the summary and frame paths agree, the close uses
    the summary (refreshing it first) and `ledger verify` passes from either source."""
    captures = week()
    seed_catalog(catalog, captures)
    set_received(catalog, {captures[3].frame_id: timedelta(days=12)}, captures)
    params = RewardParams()
    assert dirty_pairs_now(catalog) > 0
    closed = close_epoch(catalog, EPOCH, params, key=KEY, code_version="test", now=CLOSE_AT)
    assert dirty_pairs_now(catalog) == 0
    with catalog.session() as session:
        records = read_ledger(session)
    reference = recompute_epoch(catalog, records, closed.record.seq, source="frames")
    assert canonical_json(reference.body) == canonical_json(closed.record.body())
    assert closed.record.body()["statement"]["frames"] == len(captures) - 11 - 15 - 1
    trusted = public_hex(KEY.public_key())
    for source in ("current", "frames"):
        report = verify_ledger(catalog, trusted_key=trusted, code_version="test", source=source)
        assert report.ok, report.first_divergence


def dirty_pairs_now(catalog: Catalog) -> int:
    """Pairs waiting for a refresh."""
    with catalog.session() as session:
        return dirty_pairs(session)


def rematch(catalog: Catalog, captures: list[Capture], segment: str | None = None) -> None:
    """Save the captures' matches again through the match stage's writer."""
    rows: list[dict[str, object]] = [
        {
            "frame_id": c.frame_id,
            "segment_id": segment or c.segment,
            "direction": c.direction,
            "offset_m": c.offset_m,
            "distance_m": c.distance_m,
            "matched_at": utcnow(),
        }
        for c in captures
    ]
    with catalog.session() as session:
        save_matches(session, rows)


def test_redelivered_matches_change_nothing(sqlite_catalog: Catalog) -> None:
    """A match task run twice marks its pairs again, and the refresh writes the same rows."""
    captures = week()
    seed_catalog(sqlite_catalog, captures)
    refresh_bins(sqlite_catalog, RewardParams())
    before = summary_rows(sqlite_catalog)
    rematch(sqlite_catalog, captures[:30])
    rematch(sqlite_catalog, captures[:30])
    assert dirty_pairs_now(sqlite_catalog) > 0
    report = refresh_bins(sqlite_catalog, RewardParams())
    assert report.pairs > 0 and not report.rebuilt
    assert summary_rows(sqlite_catalog) == before


def test_quarantine_and_rematching_after_the_summary_keep_it_exact(catalog: Catalog) -> None:
    """A frame quarantined after matching drops out of its bin, frames matched onto another
    segment move with their bins, and the summary still gives the frames' record."""
    captures = week()
    seed_catalog(catalog, captures)
    params = RewardParams()
    refresh_bins(catalog, params)
    counted = sum(r[6] for r in summary_rows(catalog))  # type: ignore[misc]
    with catalog.session() as session:
        assert advance(
            session,
            captures[0].frame_id,
            expected=FrameState.ACCEPTED,
            to=FrameState.QUARANTINED,
            now=utcnow(),
        )
    rematch(catalog, captures[25:30], segment="seg-b")
    refresh_bins(catalog, params)
    assert sum(r[6] for r in summary_rows(catalog)) == counted - 1  # type: ignore[misc]
    assert body_bytes(catalog, params, "auto") == body_bytes(catalog, params, "frames")
    with catalog.session() as session:
        moved = session.scalars(
            select(FrameMatch.frame_id).where(FrameMatch.segment_id == "seg-b")
        ).all()
    assert {c.frame_id for c in captures[25:30]} <= set(moved)


def test_new_parameters_rebuild_the_summary(sqlite_catalog: Catalog) -> None:
    """Closing with another bin length rebuilds the summary for it, still matching the frames."""
    seed_catalog(sqlite_catalog, week())
    assert refresh_bins(sqlite_catalog, RewardParams()).rebuilt
    assert not refresh_bins(sqlite_catalog, RewardParams()).rebuilt
    finer = RewardParams(bin_length_m=5.0, hdop_error_m=2.0)
    assert refresh_bins(sqlite_catalog, finer).rebuilt
    assert body_bytes(sqlite_catalog, finer, "auto") == body_bytes(sqlite_catalog, finer, "frames")


def test_verify_from_the_summary_catches_an_edited_row(sqlite_catalog: Catalog) -> None:
    """An edited summary row makes the summary's recomputation diverge from the signed record;
    recomputing from the frames (the reference) still agrees with it."""
    seed_catalog(sqlite_catalog, week())
    close_epoch(sqlite_catalog, EPOCH, RewardParams(), key=KEY, code_version="test", now=CLOSE_AT)
    with sqlite_catalog.session() as session:
        row = session.scalars(select(RewardBin).where(RewardBin.epoch == EPOCH.monday)).first()
        assert row is not None
        row.best_key += 1 << 40
    trusted = public_hex(KEY.public_key())
    report = verify_ledger(sqlite_catalog, trusted_key=trusted, code_version="test")
    assert report.first_divergence is not None and report.first_divergence.kind == "epoch"
    report = verify_ledger(
        sqlite_catalog, trusted_key=trusted, code_version="test", source="frames"
    )
    assert report.ok


def test_the_scheduled_task_refreshes_what_was_marked(
    sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's `rewards.refresh_bins` (every few minutes on the `rewards` queue) brings
    the summary to what a close would compute, so closing finds nothing left to do."""
    url = str(sqlite_catalog.engine.url)
    monkeypatch.setenv("ROADSWARM_DATABASE_URL", url)
    monkeypatch.setenv("ROADSWARM_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setattr(ingest_tasks, "_contexts", {})
    seed_catalog(sqlite_catalog, week())
    assert dirty_pairs_now(sqlite_catalog) > 0
    schedule = reliable_config()["beat_schedule"]["rewards-bins"]
    assert (schedule["task"], schedule["options"]["queue"]) == (REWARDS_BINS_TASK, REWARDS_QUEUE)
    done = refresh_bins_task.apply().get()
    assert done["pairs"] > 0 and done["rows"] == len(summary_rows(sqlite_catalog))
    assert dirty_pairs_now(sqlite_catalog) == 0
    assert refresh_bins(sqlite_catalog, RewardParams()).pairs == 0
