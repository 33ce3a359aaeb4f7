"""Pose refinement in the tile pipeline (issue 7): how each sequence's poses were last refined.

One row per (device, sequence): the sha256 of the refinement's inputs (so the same inputs are
not refined twice), the outcome ("registered", or "smoothed" with the reason refinement was not
possible) and what went into it. Table of `mapbuilder.tiles.catalog`.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "pose_refinements",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("sequence_id", sa.String(length=200), nullable=False),
        sa.Column("inputs_sha256", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("pairs_tried", sa.Integer(), nullable=False),
        sa.Column("pairs_used", sa.Integer(), nullable=False),
        sa.Column("frames_on_lanes", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("refined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"]),
        sa.PrimaryKeyConstraint("device_id", "sequence_id"),
    )
    op.create_index(
        "pose_refinements_outcome", "pose_refinements", ["outcome", "reason"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("pose_refinements_outcome", table_name="pose_refinements")
    op.drop_table("pose_refinements")
