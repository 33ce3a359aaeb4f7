"""Rewards ledger (append-only, hash-chained records) and an index to select an epoch's frames.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ledger_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("ledger_records", schema=None) as batch_op:
        batch_op.create_index("ledger_records_kind_key", ["kind", "record_key"], unique=True)
        batch_op.create_index("ledger_records_hash", ["record_hash"], unique=True)
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.create_index("frames_state_capture_time", ["state", "capture_time"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_index("frames_state_capture_time")
    with op.batch_alter_table("ledger_records", schema=None) as batch_op:
        batch_op.drop_index("ledger_records_hash")
        batch_op.drop_index("ledger_records_kind_key")
    op.drop_table("ledger_records")
