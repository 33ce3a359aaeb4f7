"""Whether the map beneath a refined sequence moved since it was aligned (issue 7): a worker that
stores a sequence's new poses marks the later sequences near them in the same transaction, so
their realignment survives the worker dying before it queues it. `pose_refinements.
map_moved_since` (NULL: not moved) and `map_moved_version` (counts the marks), columns of
`mapbuilder.tiles.catalog.PoseRefinement`; no refinement made before this revision is marked.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "pose_refinements",
        sa.Column("map_moved_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "pose_refinements",
        sa.Column("map_moved_version", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("pose_refinements") as table:
        table.drop_column("map_moved_version")
        table.drop_column("map_moved_since")
