"""Camera calibrations devices send with their batches, and the camera of each frame.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "cameras",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("camera_id", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key("frames_camera_fk", "cameras", ["camera_id"], ["camera_id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_constraint("frames_camera_fk", type_="foreignkey")
        batch_op.drop_column("camera_id")

    op.drop_table("cameras")
