"""The catalog: the source of truth for devices, batches, frames and their state.

SQLAlchemy 2 over PostgreSQL in production and SQLite embedded, one schema for both, created and
evolved by Alembic migrations (`ingest/migrations`). Brokers can lose or duplicate messages, so every
decision that matters is a row here, written idempotently; queues only carry hints of what to do.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes: a time without a zone is a bug waiting to happen."""
        if value is None:
            return None
        if value.tzinfo is None:
            msg = f"naive datetime {value!r} given to the catalog: pass a UTC-aware datetime"
            raise ValueError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """SQLite gives naive values back: they were stored as UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


class FrameState(enum.StrEnum):
    """Where a frame is in the pipeline. `accepted` and `quarantined` are terminal for ingest;
    `failed` means the dead-letter table holds it until an operator acts."""

    RECEIVED = "received"
    VALIDATED = "validated"
    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"
    FAILED = "failed"


PENDING_STATES = (FrameState.RECEIVED, FrameState.VALIDATED)


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Device(Base):
    """A registered dashcam: its public key, and the highest batch counter it has committed."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # raw ed25519 key, hex
    registered_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_counter: Mapped[int] = mapped_column(BigInteger, default=0)


class Camera(Base):
    """A camera calibration some device sent, by its sha256: what projects its frames to tiles."""

    __tablename__ = "cameras"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    calibration: Mapped[dict[str, Any]]
    first_seen: Mapped[datetime]


class Batch(Base):
    """A committed batch manifest, kept as signed so anyone can check it again."""

    __tablename__ = "batches"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    signed_manifest: Mapped[str] = mapped_column(Text)
    frame_count: Mapped[int] = mapped_column(Integer)
    committed_at: Mapped[datetime]


class Frame(Base):
    """One keyframe as committed by its device, with the state the pipeline has brought it to."""

    __tablename__ = "frames"

    frame_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"))
    batch_counter: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sequence_id: Mapped[str] = mapped_column(String(200))
    sequence_index: Mapped[int] = mapped_column(Integer)
    capture_time: Mapped[datetime]
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float] = mapped_column(Float)
    hdop: Mapped[float | None] = mapped_column(Float)
    # Metres driven since the trip began, by the device's odometry (None: an older device).
    travelled_m: Mapped[float | None] = mapped_column(Float)
    model_versions: Mapped[dict[str, Any]]
    camera_id: Mapped[str | None] = mapped_column(ForeignKey("cameras.camera_id"))
    state: Mapped[FrameState] = mapped_column(
        Enum(FrameState, name="frame_state", values_callable=lambda e: [m.value for m in e])
    )
    state_since: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # A 64-bit perceptual hash, split in four 16-bit bands: two images within 3 bits of each other
    # share at least one band exactly, so near-duplicates are found by index, not by scanning.
    phash: Mapped[int | None] = mapped_column(BigInteger)
    phash_band0: Mapped[int | None] = mapped_column(Integer)
    phash_band1: Mapped[int | None] = mapped_column(Integer)
    phash_band2: Mapped[int | None] = mapped_column(Integer)
    phash_band3: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("frames_state_since", "state", "state_since"),
        Index("frames_sequence", "device_id", "sequence_id", "sequence_index"),
        Index("frames_lat_lon", "lat", "lon"),
        Index("frames_phash_band0", "phash_band0"),
        Index("frames_phash_band1", "phash_band1"),
        Index("frames_phash_band2", "phash_band2"),
        Index("frames_phash_band3", "phash_band3"),
    )


class Quarantine(Base):
    """Why a frame (or a submission of one) was rejected; released rows stay as history."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    frame_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    batch_counter: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("quarantine_frame_device_reason", "frame_id", "device_id", "reason", unique=True),
        Index("quarantine_reason", "reason"),
    )


class DeadLetter(Base):
    """A frame the pipeline gave up on after too many attempts, with the last error seen."""

    __tablename__ = "dead_letters"

    frame_id: Mapped[str] = mapped_column(ForeignKey("frames.frame_id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class TaskRun(Base):
    """One finished unit of pipeline work: the catalog's own record of throughput and latency."""

    __tablename__ = "task_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    frames: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[datetime]

    __table_args__ = (Index("task_runs_finished", "finished_at"),)
