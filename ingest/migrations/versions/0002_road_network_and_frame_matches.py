"""Road network (segments with indexed bounding boxes) and where each frame was matched.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "road_segments",
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("road_class", sa.String(length=32), nullable=False),
        sa.Column("oneway", sa.Boolean(), nullable=False),
        sa.Column("lanes", sa.Integer(), nullable=False),
        sa.Column("width_m", sa.Float(), nullable=False),
        sa.Column("speed_kmh", sa.Float(), nullable=False),
        sa.Column("start_node", sa.BigInteger(), nullable=False),
        sa.Column("end_node", sa.BigInteger(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("lonlat", sa.Text(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("segment_id"),
    )
    with op.batch_alter_table("road_segments", schema=None) as batch_op:
        batch_op.create_index(
            "road_segments_bbox", ["min_lon", "max_lon", "min_lat", "max_lat"], unique=False
        )
        batch_op.create_index("road_segments_source", ["source_id"], unique=False)

    op.create_table(
        "frame_matches",
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.String(length=32), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("offset_m", sa.Float(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["frame_id"],
            ["frames.frame_id"],
        ),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("frame_matches", schema=None) as batch_op:
        batch_op.create_index("frame_matches_segment", ["segment_id", "direction"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("frame_matches", schema=None) as batch_op:
        batch_op.drop_index("frame_matches_segment")

    op.drop_table("frame_matches")
    with op.batch_alter_table("road_segments", schema=None) as batch_op:
        batch_op.drop_index("road_segments_source")
        batch_op.drop_index("road_segments_bbox")

    op.drop_table("road_segments")
