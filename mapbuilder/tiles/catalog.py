"""Tiles and frame poses in the catalog (migrations 0005 and 0008): what is built, what is dirty,
why a frame was left out, and how each sequence's poses were refined.

A tile row counts the times it was marked dirty (`dirty_version`) and remembers the count its
last build started from (`built_version`): a build clears `dirty_since` only when nothing marked
the tile again while it ran, so a frame that arrives mid-build is never lost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ingest.catalog import Base


class FramePoseRow(Base):
    """Where a frame was taken as the tiles see it: position, heading, camera, and the source."""

    __tablename__ = "frame_poses"

    frame_id: Mapped[str] = mapped_column(ForeignKey("frames.frame_id"), primary_key=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    heading_deg: Mapped[float] = mapped_column(Float)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.camera_id"))
    source: Mapped[str] = mapped_column(String(16))  # "smoothed", or a refinement's name
    computed_at: Mapped[datetime]

    __table_args__ = (Index("frame_poses_lat_lon", "lat", "lon"),)


class PoseSkip(Base):
    """A matched frame that gets no pose, so no tile: the reason, and what to do about it."""

    __tablename__ = "pose_skips"

    frame_id: Mapped[str] = mapped_column(ForeignKey("frames.frame_id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]

    __table_args__ = (Index("pose_skips_reason", "reason"),)


class PoseRefinement(Base):
    """How a sequence's poses were last refined (migration 0008): the sha256 of everything the
    refinement read (frames, poses, lanes, settings), so the same inputs are never refined twice,
    and the outcome: "registered", or "smoothed" with the reason refinement was not possible;
    whether the steps between keyframes came from the device's odometry (migration 0009); how
    many of its frames were registered with other sequences' frames in the map (migration 0010);
    whether the map it was aligned to moved since (migration 0011), counted as tiles' dirty marks
    are: a posing clears the mark only if no newer one came after it read the sequence."""

    __tablename__ = "pose_refinements"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    frames: Mapped[int] = mapped_column(Integer)
    pairs_tried: Mapped[int] = mapped_column(Integer)
    pairs_used: Mapped[int] = mapped_column(Integer)
    frames_on_lanes: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    refined_at: Mapped[datetime]
    # The device's odometry (migration 0009): "used", None when no frame had it, or why it
    # was ignored ("odometry_backwards", "odometry_too_fast"; `detail` says where).
    odometry: Mapped[str | None] = mapped_column(String(32))
    map_pairs_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    map_moved_since: Mapped[datetime | None]
    map_moved_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (Index("pose_refinements_outcome", "outcome", "reason"),)


class TileRow(Base):
    """One tile of one layer: its last build (ETag, time, frames) and whether it is dirty."""

    __tablename__ = "map_tiles"

    layer: Mapped[str] = mapped_column(String(16), primary_key=True)
    z: Mapped[int] = mapped_column(Integer, primary_key=True)
    x: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer, primary_key=True)
    dirty_since: Mapped[datetime | None]
    dirty_version: Mapped[int] = mapped_column(BigInteger, default=0)
    built_version: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str | None] = mapped_column(String(64))
    built_at: Mapped[datetime | None]
    # Frames blended into the tile; at lower zooms, the sum over its four children.
    frame_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("map_tiles_dirty", "layer", "z", "dirty_since"),)


class BlockLease(Base):
    """A block some builder is working on: one builder per block at a time, so a slow build can
    never overwrite a newer one's tiles; a lease past `expires_at` (its worker died) is taken over."""

    __tablename__ = "tile_block_leases"

    layer: Mapped[str] = mapped_column(String(16), primary_key=True)
    z: Mapped[int] = mapped_column(Integer, primary_key=True)
    bx: Mapped[int] = mapped_column(Integer, primary_key=True)
    by: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime]
