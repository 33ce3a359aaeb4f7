"""Usage metering in map credits: tiles and frames served, per key and UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ingest.catalog import utcnow
from ingest.db import Catalog
from mapbuilder.serve.keys import ApiUsageRow


@dataclass(frozen=True)
class DayUsage:
    """One key's use on one UTC day."""

    day: str
    tiles: int
    frames: int
    credits: int


def record_usage(
    catalog: Catalog,
    key_id: str,
    *,
    tiles: int = 0,
    frames: int = 0,
    credits: int = 0,
    at: datetime | None = None,
) -> None:
    """Add to the key's counters for the day (one upsert: concurrent requests add, never overwrite)."""
    day = (at or utcnow()).strftime("%Y-%m-%d")
    values = {"key_id": key_id, "day": day, "tiles": tiles, "frames": frames, "credits": credits}
    insert = pg_insert if catalog.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ApiUsageRow).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["key_id", "day"],
        set_={
            "tiles": ApiUsageRow.tiles + tiles,
            "frames": ApiUsageRow.frames + frames,
            "credits": ApiUsageRow.credits + credits,
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
