"""The per-bin capture summary in the catalog, and bringing it up to date.

Rows are derived data: migration 0006's triggers mark a (device, segment) pair in
`reward_bins_dirty` in the same transaction as any change that can alter its rows (a match
written, moved or removed; a frame's state, capture or receipt time or hdop changed, so frames
quarantined or released after matching are covered). `refresh_bins` recomputes every marked
pair's rows from its frames with `rewards.binrows.reduce_frames` and replaces them, so it is
idempotent: a match task delivered twice marks a pair twice and changes nothing. The summary is
kept by the rewards package (not by the match stage in `mapbuilder`, which may not import
`rewards`), and the triggers keep it consistent without any other package knowing about it.

Rows depend on the parameters in `LAYOUT_FIELDS`; the summary records the layout it was built
with and is rebuilt (every pair marked) when it changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Date,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.catalog import Base, Frame, FrameState
from ingest.db import Catalog
from mapbuilder.catalog import FrameMatch
from rewards.arrays import frame_id_matrix
from rewards.binrows import BinRows, FrameColumns, reduce_frames
from rewards.canonical import canonical_json
from rewards.inputs import posix_ms
from rewards.settings import RewardParams

LAYOUT_FIELDS = (
    "epoch_length_days",
    "grace_period_h",
    "bin_length_m",
    "hdop_error_m",
    "missing_hdop",
    "quality_step_m",
)
LAYOUT_FORMAT = 1
PAIRS_PER_STEP = 500
LOCK_KEY = 0x7277_6269_6E73  # "rwbins": one refresh at a time (PostgreSQL advisory lock)
MICROSECOND = timedelta(microseconds=1)
POSIX_ZERO = datetime(1970, 1, 1, tzinfo=UTC)


class RewardBin(Base):
    """One device's frames on one bin of one epoch (see `rewards.binrows`)."""

    __tablename__ = "reward_bins"

    epoch: Mapped[date] = mapped_column(Date, primary_key=True)
    counted_epoch: Mapped[date] = mapped_column(Date, primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    frames: Mapped[int] = mapped_column(Integer)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger)
    best_key: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (Index("reward_bins_device_segment", "device_id", "segment_id"),)


class RewardBinDirty(Base):
    """A (device, segment) pair whose rows must be recomputed (written by triggers)."""

    __tablename__ = "reward_bins_dirty"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class RewardBinLayout(Base):
    """The one row saying which parameters the summary was built with."""

    __tablename__ = "reward_bins_layout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    layout: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)


def layout_document(params: RewardParams) -> dict[str, Any]:
    """The parameters the summary's rows depend on."""
    document = params.document()
    return {"format": LAYOUT_FORMAT, **{name: document[name] for name in LAYOUT_FIELDS}}


def layout_hash(params: RewardParams) -> str:
    """The summary layout `params` need."""
    return hashlib.sha256(canonical_json(layout_document(params))).hexdigest()


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did."""

    pairs: int
    rows: int
    rebuilt: bool


def _lock(session: Session) -> None:
    """Serialise refreshes: two running at once could write an older computation last."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    else:  # a write statement takes SQLite's single write lock for the transaction
        session.execute(update(RewardBinLayout).where(RewardBinLayout.id == -1).values(id=-1))


def _insert_ignoring(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(RewardBinDirty).on_conflict_do_nothing()
    return sqlite.insert(RewardBinDirty).on_conflict_do_nothing()


def _ensure_layout(catalog: Catalog, params: RewardParams) -> bool:
    """Rebuild (mark every pair) when the summary was built with another layout; True if so."""
    wanted = layout_hash(params)
    with catalog.session() as session:
        _lock(session)
        row = session.get(RewardBinLayout, 1)
        if row is not None and row.layout == wanted:
            return False
        session.execute(delete(RewardBin))
        pairs = (
            select(Frame.device_id, FrameMatch.segment_id, text("1"))
            .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
            .where(FrameMatch.segment_id.is_not(None))
            .distinct()
        )
        session.execute(
            _insert_ignoring(session).from_select(["device_id", "segment_id", "version"], pairs)
        )
        document = json.dumps(layout_document(params), sort_keys=True)
        if row is None:
            session.add(RewardBinLayout(id=1, layout=wanted, params=document))
        else:
            row.layout, row.params = wanted, document
        return True


def summary_layout(session: Session) -> str | None:
    """The layout the summary was built with (None before the first refresh)."""
    row = session.get(RewardBinLayout, 1)
    return None if row is None else row.layout


def dirty_pairs(session: Session) -> int:
    """How many (device, segment) pairs wait for a refresh."""
    return int(session.scalar(select(func.count()).select_from(RewardBinDirty)) or 0)


def _columns(rows: list[Any]) -> tuple[FrameColumns, list[str], list[str]]:
    """Frame rows as the reduction's columns, with their segment and device lists."""
    ids, devices_of, captured, received, hdop, segment, direction, offset, distance = (
        list(c) for c in zip(*rows, strict=True)
    )
    segments, devices = sorted(set(segment)), sorted(set(devices_of))
    segment_code = {s: i for i, s in enumerate(segments)}
    device_code = {d: i for i, d in enumerate(devices)}
    columns = FrameColumns(
        segment=np.array([segment_code[s] for s in segment], np.int64),
        direction=np.array([d == "backward" for d in direction], np.int64),
        device=np.array([device_code[d] for d in devices_of], np.int64),
        offset_m=np.array([0.0 if v is None else v for v in offset], np.float64),
        distance_m=np.array([0.0 if v is None else v for v in distance], np.float64),
        hdop=np.array([np.nan if v is None else v for v in hdop], np.float64),
        time_ms=np.array([posix_ms(t) for t in captured], np.int64),
        received_us=np.array([(t - POSIX_ZERO) // MICROSECOND for t in received], np.int64),
        frame_ids=frame_id_matrix(ids),
    )
    return columns, segments, devices


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms // 1000, UTC).date()


def _row_dicts(rows: BinRows, segments: list[str], devices: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "epoch": _day(int(rows.epoch_ms[i])),
            "counted_epoch": _day(int(rows.counted_ms[i])),
            "segment_id": segments[int(rows.segment[i])],
            "direction": int(rows.direction[i]),
            "bin": int(rows.bin[i]),
            "device_id": devices[int(rows.device[i])],
            "frames": int(rows.frames[i]),
            "first_ms": int(rows.first_ms[i]),
            "last_ms": int(rows.last_ms[i]),
            "best_key": int(rows.best_key[i]),
            "digest": rows.digest[i].tobytes(),
        }
        for i in range(len(rows))
    ]


def recompute_pairs(
    session: Session, pairs: list[tuple[str, str]], params: RewardParams
) -> list[dict[str, Any]]:  # fmt: skip
    """The summary rows of (device, segment) pairs, from their accepted, matched frames."""
    found = session.execute(
        select(
            Frame.frame_id,
            Frame.device_id,
            Frame.capture_time,
            Frame.received_at,
            Frame.hdop,
            FrameMatch.segment_id,
            FrameMatch.direction,
            FrameMatch.offset_m,
            FrameMatch.distance_m,
        )
        .join(FrameMatch, FrameMatch.frame_id == Frame.frame_id)
        .where(
            Frame.state == FrameState.ACCEPTED,
            tuple_(Frame.device_id, FrameMatch.segment_id).in_(pairs),
        )
    ).all()
    if not found:
        return []
    columns, segments, devices = _columns(list(found))
    return _row_dicts(reduce_frames(columns, params), segments, devices)


def _refresh_step(catalog: Catalog, params: RewardParams, limit: int) -> tuple[int, int]:
    """Recompute up to `limit` marked pairs in one transaction; (pairs, rows written)."""
    with catalog.session() as session:
        _lock(session)
        marked = session.execute(
            select(RewardBinDirty.device_id, RewardBinDirty.segment_id, RewardBinDirty.version)
            .order_by(RewardBinDirty.device_id, RewardBinDirty.segment_id)
            .limit(limit)
        ).all()
        if not marked:
            return 0, 0
        pairs = [(device, segment) for device, segment, _ in marked]
        rows = recompute_pairs(session, pairs, params)
        session.execute(
            delete(RewardBin).where(tuple_(RewardBin.device_id, RewardBin.segment_id).in_(pairs))
        )
        if rows:
            session.execute(insert(RewardBin), rows)
        # A pair marked again meanwhile keeps its (newer) mark and is recomputed next time.
        session.execute(
            delete(RewardBinDirty).where(
                tuple_(
                    RewardBinDirty.device_id, RewardBinDirty.segment_id, RewardBinDirty.version
                ).in_([tuple(m) for m in marked])
            )
        )
        return len(marked), len(rows)


def refresh_bins(
    catalog: Catalog, params: RewardParams, *, pairs_per_step: int = PAIRS_PER_STEP
) -> RefreshReport:
    """Bring the summary up to date for `params` (rebuilding it if its layout changed)."""
    rebuilt = _ensure_layout(catalog, params)
    pairs = rows = 0
    while True:
        done, written = _refresh_step(catalog, params, pairs_per_step)
        if done == 0:
            return RefreshReport(pairs, rows, rebuilt)
        pairs, rows = pairs + done, rows + written
