"""The distance each keyframe was driven along its trip, by the device's odometry (issue 7), and
whether a sequence's pose refinement used it.

`frames.travelled_m`: metres since the trip began, as the edge integrates the receiver's Doppler
speed (NULL for frames of devices that do not send it). `pose_refinements.odometry`: "used" when
steps between keyframes came from it, NULL when the sequence had none, or why it was ignored
(`odometry_backwards`, `odometry_too_fast`). Columns of `ingest.catalog.Frame` and
`mapbuilder.tiles.catalog.PoseRefinement`.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite drops a column in place since 3.35): rebuilding
# `frames` the batch way would trip over the triggers 0006 put on it.


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("frames", sa.Column("travelled_m", sa.Float(), nullable=True))
    op.add_column("pose_refinements", sa.Column("odometry", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("pose_refinements", "odometry")
    op.drop_column("frames", "travelled_m")
