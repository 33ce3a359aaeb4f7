"""How many of a sequence's frames were registered with the map (issue 7): pose refinement aligns
a sequence to the frames of other sequences already refined near it, and records how many such
registrations it used. `pose_refinements.map_pairs_used`, a column of
`mapbuilder.tiles.catalog.PoseRefinement`; 0 for refinements made before this revision.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "pose_refinements",
        sa.Column("map_pairs_used", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("pose_refinements", "map_pairs_used")
