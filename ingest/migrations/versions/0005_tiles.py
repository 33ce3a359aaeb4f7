"""Imagery and layer tiles: dirty-tile tracking and what is stored (issue 7).

Frame poses as the tiles see them, frames left out of the tiles with their reason, and one row per
tile of every layer (ETag, build time, frame count, dirty mark), and the lease of each block being
built. Tables of `mapbuilder.tiles.catalog`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "frame_poses",
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("heading_deg", sa.Float(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.frame_id"]),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.camera_id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    op.create_index("frame_poses_lat_lon", "frame_poses", ["lat", "lon"], unique=False)
    op.create_table(
        "pose_skips",
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.frame_id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    op.create_index("pose_skips_reason", "pose_skips", ["reason"], unique=False)
    op.create_table(
        "map_tiles",
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column("z", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("dirty_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dirty_version", sa.BigInteger(), nullable=False),
        sa.Column("built_version", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("layer", "z", "x", "y"),
    )
    op.create_index("map_tiles_dirty", "map_tiles", ["layer", "z", "dirty_since"], unique=False)
    op.create_table(
        "tile_block_leases",
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column("z", sa.Integer(), nullable=False),
        sa.Column("bx", sa.Integer(), nullable=False),
        sa.Column("by", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("layer", "z", "bx", "by"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("tile_block_leases")
    op.drop_index("map_tiles_dirty", table_name="map_tiles")
    op.drop_table("map_tiles")
    op.drop_index("pose_skips_reason", table_name="pose_skips")
    op.drop_table("pose_skips")
    op.drop_index("frame_poses_lat_lon", table_name="frame_poses")
    op.drop_table("frame_poses")
