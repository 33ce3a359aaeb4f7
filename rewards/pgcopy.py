"""PostgreSQL's binary COPY straight into numpy: an epoch's frames without a Python object per row.

Every column is made fixed-width in SQL (ids as 32-byte bytea, segments and devices as their rank
in byte order, NULLs as NaN), so the COPY stream is an array of identical records that numpy reads
in one call. The filter is the one `inputs.load_frames` applies through SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import Connection, sql
from sqlalchemy.orm import Session

from rewards.epochs import Epoch
from rewards.errors import RewardsError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
TRAILER = b"\xff\xff"
# Ranks in byte order ("C" collation), the order Python sorts ids in.
CODES = """
WITH seg AS (SELECT segment_id, (row_number() OVER (ORDER BY segment_id COLLATE "C") - 1)::int4 AS code FROM road_segments),
dev AS (SELECT device_id, (row_number() OVER (ORDER BY device_id COLLATE "C") - 1)::int4 AS code FROM devices)
"""
COUNTED = """
FROM frames f JOIN frame_matches m ON m.frame_id = f.frame_id
JOIN seg ON seg.segment_id = m.segment_id JOIN dev ON dev.device_id = f.device_id
WHERE f.state = 'accepted' AND f.received_at < {cutoff}
"""
FRAME_COLUMNS = (
    ("frame_id", "decode(f.frame_id, 'hex')", "S32"),
    ("device", "dev.code", ">i4"),
    ("segment", "seg.code", ">i4"),
    ("direction", "(m.direction = 'backward')::int4", ">i4"),
    ("offset_m", "coalesce(m.offset_m, 0)::float8", ">f8"),
    ("distance_m", "coalesce(m.distance_m, 0)::float8", ">f8"),
    ("hdop", "coalesce(f.hdop, 'NaN')::float8", ">f8"),
    ("time_ms", "floor(extract(epoch FROM f.capture_time) * 1000)::int8", ">i8"),
)
HISTORY_COLUMNS = tuple(
    c for c in FRAME_COLUMNS if c[0] in ("segment", "direction", "offset_m", "time_ms")
)


def _record_dtype(columns: tuple[tuple[str, str, str], ...]) -> np.dtype[Any]:
    """One COPY tuple: a field count, then a length and the value of each column."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, _, kind in columns:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    return np.dtype(fields)


def _copy(session: Session, query: sql.Composed) -> bytes:
    connection: Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def _records(data: bytes, columns: tuple[tuple[str, str, str], ...]) -> NDArray[np.void]:
    """The tuples of a binary COPY stream as a structured array (every value non-NULL)."""
    if not data.startswith(SIGNATURE) or not data.endswith(TRAILER):
        msg = "PostgreSQL sent a COPY stream in an unknown format: check the server version"
        raise RewardsError(msg)
    extension = int.from_bytes(data[15:19], "big")
    body = data[19 + extension : -len(TRAILER)]
    dtype = _record_dtype(columns)
    records = np.frombuffer(body, dtype=dtype)
    for name, _, kind in columns:
        if np.any(records[f"{name}_length"] != np.dtype(kind).itemsize):
            msg = f"column {name} came back NULL or of another width: the catalog schema is not the one expected"
            raise RewardsError(msg)
    return records


def _query(
    columns: tuple[tuple[str, str, str], ...], where: str, values: dict[str, datetime]
) -> sql.Composed:
    """The SELECT to copy, its times as literals (COPY takes no bound parameters)."""
    selected = ", ".join(expression for _, expression, _ in columns)
    literal = {key: sql.Literal(value) for key, value in values.items()}
    return sql.SQL(CODES + f"SELECT {selected} " + COUNTED + where).format(**literal)


def copy_frames(
    session: Session, epoch: Epoch, received_before: datetime
) -> tuple[NDArray[np.void], list[str]]:
    """The epoch's counted frames as records, and every device id in code order."""
    where = "AND f.capture_time >= {start} AND f.capture_time < {end}"
    values = {"cutoff": received_before, "start": epoch.start, "end": epoch.end}
    records = _records(_copy(session, _query(FRAME_COLUMNS, where, values)), FRAME_COLUMNS)
    devices = session.connection().exec_driver_sql(
        'SELECT device_id FROM devices ORDER BY device_id COLLATE "C"'
    )
    return records, [row[0] for row in devices]


def copy_history(session: Session, epoch: Epoch, received_before: datetime) -> NDArray[np.void]:
    """Where and when the frames captured before the epoch were, as records."""
    values = {"cutoff": received_before, "start": epoch.start}
    query = _query(HISTORY_COLUMNS, "AND f.capture_time < {start}", values)
    return _records(_copy(session, query), HISTORY_COLUMNS)


def copy_select(
    session: Session,
    select_sql: str,
    values: dict[str, Any],
    columns: tuple[tuple[str, str, str], ...],
) -> NDArray[np.void]:
    """Records of any SELECT over the segment and device codes (`seg`, `dev`) as `columns`
    describe them; `{name}` placeholders in it take `values` as literals."""
    literal = {key: sql.Literal(value) for key, value in values.items()}
    return _records(_copy(session, sql.SQL(CODES + select_sql).format(**literal)), columns)
