"""Initial schema: devices, batches, frames, quarantine, dead letters, task runs.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("batch_counter", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            "quarantine_frame_device_reason", ["frame_id", "device_id", "reason"], unique=True
        )
        batch_op.create_index("quarantine_reason", ["reason"], unique=False)

    op.create_table(
        "task_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index("task_runs_finished", ["finished_at"], unique=False)

    op.create_table(
        "batches",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_manifest", sa.Text(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
        ),
        sa.PrimaryKeyConstraint("device_id", "counter"),
    )
    op.create_table(
        "frames",
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("batch_counter", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.String(length=200), nullable=False),
        sa.Column("sequence_index", sa.Integer(), nullable=False),
        sa.Column("capture_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("altitude_m", sa.Float(), nullable=True),
        sa.Column("heading_deg", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=False),
        sa.Column("hdop", sa.Float(), nullable=True),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "received", "validated", "accepted", "quarantined", "failed", name="frame_state"
            ),
            nullable=False,
        ),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("phash", sa.BigInteger(), nullable=True),
        sa.Column("phash_band0", sa.Integer(), nullable=True),
        sa.Column("phash_band1", sa.Integer(), nullable=True),
        sa.Column("phash_band2", sa.Integer(), nullable=True),
        sa.Column("phash_band3", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
        ),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.create_index("frames_lat_lon", ["lat", "lon"], unique=False)
        batch_op.create_index("frames_phash_band0", ["phash_band0"], unique=False)
        batch_op.create_index("frames_phash_band1", ["phash_band1"], unique=False)
        batch_op.create_index("frames_phash_band2", ["phash_band2"], unique=False)
        batch_op.create_index("frames_phash_band3", ["phash_band3"], unique=False)
        batch_op.create_index(
            "frames_sequence", ["device_id", "sequence_id", "sequence_index"], unique=False
        )
        batch_op.create_index("frames_state_since", ["state", "state_since"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column("frame_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["frame_id"],
            ["frames.frame_id"],
        ),
        sa.PrimaryKeyConstraint("frame_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("dead_letters")
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_index("frames_state_since")
        batch_op.drop_index("frames_sequence")
        batch_op.drop_index("frames_phash_band3")
        batch_op.drop_index("frames_phash_band2")
        batch_op.drop_index("frames_phash_band1")
        batch_op.drop_index("frames_phash_band0")
        batch_op.drop_index("frames_lat_lon")

    op.drop_table("frames")
    op.drop_table("batches")
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("task_runs_finished")

    op.drop_table("task_runs")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("quarantine_reason")
        batch_op.drop_index("quarantine_frame_device_reason")

    op.drop_table("quarantine")
    op.drop_table("devices")
