"""Usage metering in map credits: tiles and frames served, per key and UTC day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ingest.catalog import utcnow
from ingest.db import Catalog
from mapbuilder.serve.keys import ApiUsageRow

DAY_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class DayUsage:
    """One key's use on one UTC day."""

    day: str
    tiles: int
    frames: int
    credits: int


@dataclass(frozen=True)
class UsageDelta:
    """Use to add to one key's counters for one UTC day."""

    key_id: str
    day: str
    tiles: int = 0
    frames: int = 0
    credits: int = 0


def record_usage(
    catalog: Catalog,
    key_id: str,
    *,
    tiles: int = 0,
    frames: int = 0,
    credits: int = 0,
    at: datetime | None = None,
) -> None:
    """Add to the key's counters for the day (see `add_usage`)."""
    day = (at or utcnow()).strftime(DAY_FORMAT)
    add_usage(catalog, [UsageDelta(key_id, day, tiles, frames, credits)])


def add_usage(catalog: Catalog, deltas: Sequence[UsageDelta]) -> None:
    """Add each delta to its key's day in one statement: concurrent writers add, never overwrite.

    At most one delta per key and day (PostgreSQL refuses to update a row twice in one upsert);
    rows are written in key order, so two processes flushing at once cannot deadlock.
    """
    if not deltas:
        return
    insert = pg_insert if catalog.engine.dialect.name == "postgresql" else sqlite_insert
    rows = [asdict(delta) for delta in sorted(deltas, key=lambda d: (d.key_id, d.day))]
    statement = insert(ApiUsageRow).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["key_id", "day"],
        set_={
            "tiles": ApiUsageRow.tiles + statement.excluded.tiles,
            "frames": ApiUsageRow.frames + statement.excluded.frames,
            "credits": ApiUsageRow.credits + statement.excluded.credits,
        },
    )
    with catalog.session() as session:
        session.execute(statement)


def usage_of(catalog: Catalog, key_id: str, *, days: int = 31) -> list[DayUsage]:
    """The key's last `days` days of use, newest first (only its own rows: the key id is the filter)."""
    query = (
        select(ApiUsageRow)
        .where(ApiUsageRow.key_id == key_id)
        .order_by(ApiUsageRow.day.desc())
        .limit(days)
    )
    with catalog.session() as session:
        return [
            DayUsage(row.day, row.tiles, row.frames, row.credits) for row in session.scalars(query)
        ]
