"""Per-bin capture summaries for epoch closing, and the triggers that mark them stale (issue 9).

`reward_bins` holds one row per (capture epoch, counted epoch, segment, direction, bin, device):
what the scoring needs from that device's frames there, so closing an epoch reads O(bins) rows.
The rows are derived data, recomputed by `rewards.binrefresh` for every (device, segment) pair in
`reward_bins_dirty`. Triggers fill that table in the same transaction as the change that makes a
row stale (a match written, moved or removed; a frame's state, time or hdop changed), so no match
task, quarantine or release anywhere needs to know the summary exists, and none is ever missed.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The pair of (device, segment) whose rows must be recomputed; `version` grows with each mark, so
# a refresh removes a mark only if nothing marked the pair again while it was computing.
PG_MARK = """
INSERT INTO reward_bins_dirty (device_id, segment_id, version)
SELECT {device}, {segment}, 1 {source}
ON CONFLICT (device_id, segment_id) DO UPDATE SET version = reward_bins_dirty.version + 1;
"""
PG_MATCH_FUNCTION = f"""
CREATE FUNCTION reward_bins_mark_match() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    IF OLD.segment_id IS NOT NULL THEN
      {PG_MARK.format(device="f.device_id", segment="OLD.segment_id", source="FROM frames f WHERE f.frame_id = OLD.frame_id")}
    END IF;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    IF NEW.segment_id IS NOT NULL THEN
      {PG_MARK.format(device="f.device_id", segment="NEW.segment_id", source="FROM frames f WHERE f.frame_id = NEW.frame_id")}
    END IF;
  END IF;
  RETURN NULL;
END $$;
"""
PG_FRAME_FUNCTION = f"""
CREATE FUNCTION reward_bins_mark_frame() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {PG_MARK.format(device="NEW.device_id", segment="m.segment_id", source="FROM frame_matches m WHERE m.frame_id = NEW.frame_id AND m.segment_id IS NOT NULL")}
  RETURN NULL;
END $$;
"""
FRAME_CHANGED = (
    "OLD.state IS DISTINCT FROM NEW.state OR OLD.capture_time IS DISTINCT FROM NEW.capture_time"
    " OR OLD.received_at IS DISTINCT FROM NEW.received_at OR OLD.hdop IS DISTINCT FROM NEW.hdop"
)
PG_TRIGGERS = (
    PG_MATCH_FUNCTION,
    PG_FRAME_FUNCTION,
    "CREATE TRIGGER reward_bins_match AFTER INSERT OR UPDATE OR DELETE ON frame_matches"
    " FOR EACH ROW EXECUTE FUNCTION reward_bins_mark_match();",
    "CREATE TRIGGER reward_bins_frame AFTER UPDATE ON frames"
    f" FOR EACH ROW WHEN ({FRAME_CHANGED}) EXECUTE FUNCTION reward_bins_mark_frame();",
)
PG_DROP = (
    "DROP TRIGGER IF EXISTS reward_bins_frame ON frames;",
    "DROP TRIGGER IF EXISTS reward_bins_match ON frame_matches;",
    "DROP FUNCTION IF EXISTS reward_bins_mark_frame();",
    "DROP FUNCTION IF EXISTS reward_bins_mark_match();",
)
# SQLite has one writer at a time, so marking once is enough.
SQLITE_MARK = "INSERT OR IGNORE INTO reward_bins_dirty (device_id, segment_id, version) SELECT {device}, {segment}, 1 {source};"
SQLITE_MATCH_OLD = SQLITE_MARK.format(
    device="device_id", segment="OLD.segment_id", source="FROM frames WHERE frame_id = OLD.frame_id"
)
SQLITE_MATCH_NEW = SQLITE_MARK.format(
    device="device_id", segment="NEW.segment_id", source="FROM frames WHERE frame_id = NEW.frame_id"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER reward_bins_match_insert AFTER INSERT ON frame_matches"
    f" WHEN NEW.segment_id IS NOT NULL BEGIN {SQLITE_MATCH_NEW} END;",
    "CREATE TRIGGER reward_bins_match_update AFTER UPDATE ON frame_matches"
    f" BEGIN {SQLITE_MATCH_OLD} {SQLITE_MATCH_NEW} END;",
    "CREATE TRIGGER reward_bins_match_delete AFTER DELETE ON frame_matches"
    f" BEGIN {SQLITE_MATCH_OLD} END;",
    f"CREATE TRIGGER reward_bins_frame AFTER UPDATE ON frames WHEN {FRAME_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN "
    + SQLITE_MARK.format(
        device="NEW.device_id",
        segment="segment_id",
        source="FROM frame_matches WHERE frame_id = NEW.frame_id AND segment_id IS NOT NULL",
    )
    + " END;",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS reward_bins_frame;",
    "DROP TRIGGER IF EXISTS reward_bins_match_delete;",
    "DROP TRIGGER IF EXISTS reward_bins_match_update;",
    "DROP TRIGGER IF EXISTS reward_bins_match_insert;",
)


def _tables() -> None:
    op.create_table(
        "reward_bins",
        sa.Column("epoch", sa.Date(), nullable=False),
        sa.Column("counted_epoch", sa.Date(), nullable=False),
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("best_key", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "epoch", "counted_epoch", "segment_id", "direction", "bin", "device_id"
        ),
    )
    with op.batch_alter_table("reward_bins", schema=None) as batch_op:
        batch_op.create_index("reward_bins_device_segment", ["device_id", "segment_id"])
    op.create_table(
        "reward_bins_dirty",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "segment_id"),
    )
    op.create_table(
        "reward_bins_layout",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("layout", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def upgrade() -> None:
    """Apply this revision."""
    _tables()
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    # Frames matched before this revision are marked once, so the first refresh sums them up.
    op.execute(
        "INSERT INTO reward_bins_dirty (device_id, segment_id, version)"
        " SELECT DISTINCT f.device_id, m.segment_id, 1 FROM frame_matches m"
        " JOIN frames f ON f.frame_id = m.frame_id WHERE m.segment_id IS NOT NULL"
    )


def downgrade() -> None:
    """Revert this revision."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.drop_table("reward_bins_layout")
    op.drop_table("reward_bins_dirty")
    with op.batch_alter_table("reward_bins", schema=None) as batch_op:
        batch_op.drop_index("reward_bins_device_segment")
    op.drop_table("reward_bins")
