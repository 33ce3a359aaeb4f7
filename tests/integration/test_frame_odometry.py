"""The device's odometry in the upload protocol: each keyframe record's `travelled_m` goes from
the spool through the signed manifest into the catalog. Records without it (older devices) sign
the bytes they always signed and are stored without it; bad values are refused with what to do;
migration 0009 adds the column to a catalog that already holds frames."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy import Engine, MetaData, Table, inspect, select

from edge.identity import create_identity
from edge.spool import Spool
from ingest.catalog import Frame, utcnow
from ingest.commit import commit_batch
from ingest.db import MIGRATIONS, Catalog, create_catalog_engine
from ingest.devices import register_device
from ingest.protocol import (
    MAX_TRAVELLED_M,
    FrameEntry,
    Registration,
    SignedManifest,
    frame_object_key,
    public_key_hex,
    registration_proof,
    verify,
)
from ingest.storage import LocalObjectStore
from tests.edge_records import record_for
from tests.ingest_helpers import FakeDevice, make_jpeg, postgres_database


def _commit(catalog: Catalog, store: LocalObjectStore, signed: SignedManifest, key: Any) -> None:
    """Register the manifest's device by its key and commit the batch."""
    registration = Registration(
        public_key=public_key_hex(key.public_key()), proof=registration_proof(key)
    )
    info, _ = register_device(catalog, registration, now=utcnow())
    commit_batch(catalog, store, info, signed, utcnow())


def _stored(catalog: Catalog) -> dict[str, float | None]:
    """`travelled_m` of every cataloged frame, by frame id."""
    with catalog.session() as session:
        return {f.frame_id: f.travelled_m for f in session.scalars(select(Frame))}


def test_the_spools_travelled_m_reaches_the_catalog(catalog: Catalog, tmp_path: Path) -> None:
    """Sealed, signed over, verified and committed: the catalog holds each frame's distance."""
    identity = create_identity(tmp_path / "identity")
    store = LocalObjectStore(tmp_path / "store")
    frames = [make_jpeg(i) for i in range(3)]
    with Spool(tmp_path / "spool") as spool:
        for index, data in enumerate(frames):
            record = record_for(data, "drive", index)
            spool.add(record, data)
            store.put_bytes(frame_object_key(identity.device_id, record.frame_id), data)
        signed = spool.seal_batch(identity)
    assert signed is not None
    assert [f.travelled_m for f in signed.manifest.frames] == [0.0, 8.0, 16.0]
    assert b'"travelled_m":8.0' in signed.manifest.canonical()
    verify(signed, identity.public_key)
    _commit(catalog, store, signed, identity.private_key)
    expected = {f.frame_id: f.travelled_m for f in signed.manifest.frames}
    assert _stored(catalog) == expected


def test_records_without_travelled_m_sign_the_old_bytes_and_are_stored_without(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    """An older device's manifest has no `travelled_m` in its signed bytes, verifies, and its
    frames are cataloged with none (refinement then steps by the keyframes' speeds)."""
    device = FakeDevice()
    frames = [make_jpeg(i) for i in range(2)]
    signed = device.manifest(device.entries(frames))
    assert b"travelled_m" not in signed.manifest.canonical()
    verify(signed, device.key.public_key())
    store = LocalObjectStore(tmp_path / "store")
    for entry, data in zip(signed.manifest.frames, frames, strict=True):
        store.put_bytes(frame_object_key(device.device_id, entry.frame_id), data)
    _commit(sqlite_catalog, store, signed, device.key)
    assert set(_stored(sqlite_catalog).values()) == {None}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-0.5, "is not a distance along the trip"),
        (MAX_TRAVELLED_M * 2, "is not a distance along the trip"),
        (math.nan, "finite number"),
        (math.inf, "finite number"),
        ("far", "valid number"),
    ],
)
def test_bad_travelled_m_is_refused_with_what_to_do(value: object, says: str) -> None:
    """Negative, absurdly large, not finite or not a number: refused, naming the field."""
    (entry,) = FakeDevice().entries([make_jpeg(1)])
    with pytest.raises(ValidationError, match=says) as caught:
        FrameEntry.model_validate({**entry.model_dump(), "travelled_m": value})
    assert caught.value.errors()[0]["loc"] == ("travelled_m",)
    if isinstance(value, float) and math.isfinite(value):
        assert "send the metres driven since the trip began" in str(caught.value)
    assert FrameEntry.model_validate({**entry.model_dump(), "travelled_m": 0.0}).travelled_m == 0.0


def test_the_api_refuses_a_negative_travelled_m_with_the_reason(api: Any) -> None:
    """The ingest API answers 422 and says which frame's value is wrong and what to send."""
    device = FakeDevice()
    assert api.register(device).status_code in (200, 201)
    signed = device.manifest(device.entries([make_jpeg(1)]))
    body = signed.model_dump_json().replace('"travelled_m":null', '"travelled_m":-3.0')
    assert '"travelled_m":-3.0' in body
    answer = api.signed_post(device, "/v1/batches", body.encode())
    assert answer.status_code == 422, answer.text
    message = answer.json()["message"]
    assert "frames.0.travelled_m" in message and "not a distance along the trip" in message


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[Engine]:
    """An empty database: a SQLite file in `folder`, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        engine = create_catalog_engine(f"sqlite:///{folder / 'catalog.sqlite3'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    with postgres_database() as url:
        engine = create_catalog_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _migrate(engine: Engine, action: str, revision: str) -> None:
    """Run alembic's `upgrade` or `downgrade` to `revision` on the engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _insert_old_frame(engine: Engine) -> None:
    """A device and an accepted frame as a catalog at revision 0008 holds them."""
    now = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
    with engine.begin() as connection:
        tables = MetaData()
        devices = Table("devices", tables, autoload_with=connection)
        frames = Table("frames", tables, autoload_with=connection)
        connection.execute(
            devices.insert().values(
                device_id="d" * 64, public_key="00" * 32, registered_at=now, last_counter=1
            )
        )
        connection.execute(
            frames.insert().values(
                frame_id="f" * 64,
                device_id="d" * 64,
                batch_counter=1,
                object_key="frames/old.jpg",
                size_bytes=1000,
                sequence_id="old-trip",
                sequence_index=0,
                capture_time=now,
                lat=60.17,
                lon=24.94,
                heading_deg=0.0,
                speed_mps=8.0,
                model_versions={},
                state="accepted",
                state_since=now,
                attempts=0,
                received_at=now,
            )
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0009_adds_the_odometry_to_a_catalog_holding_frames(
    kind: str, tmp_path: Path
) -> None:
    """Up from 0008 with a frame in place: the frame reads back with no distance; down again
    removes both columns and keeps the frame; up again is clean."""
    with _database(kind, tmp_path) as engine:
        _migrate(engine, "upgrade", "0008")
        _insert_old_frame(engine)
        assert "travelled_m" not in _columns(engine, "frames")
        _migrate(engine, "upgrade", "head")
        assert "travelled_m" in _columns(engine, "frames")
        assert "odometry" in _columns(engine, "pose_refinements")
        assert _stored(Catalog(engine)) == {"f" * 64: None}
        _migrate(engine, "downgrade", "0008")
        assert "travelled_m" not in _columns(engine, "frames")
        assert "odometry" not in _columns(engine, "pose_refinements")
        _migrate(engine, "upgrade", "head")
        assert _stored(Catalog(engine)) == {"f" * 64: None}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_0010_0011_count_no_map_pairs_and_no_moved_map_for_refinements_made_before(
    kind: str, tmp_path: Path
) -> None:
    """Up from 0009 with a sequence's refinement record in place: it reads back with no pairs
    registered with the map and its map not marked moved; down again removes the columns, one
    revision at a time, and keeps the record."""
    with _database(kind, tmp_path) as engine:
        _migrate(engine, "upgrade", "0009")
        _insert_old_frame(engine)
        with engine.begin() as connection:
            refinements = Table("pose_refinements", MetaData(), autoload_with=connection)
            connection.execute(
                refinements.insert().values(
                    device_id="d" * 64,
                    sequence_id="old-trip",
                    inputs_sha256="0" * 64,
                    outcome="registered",
                    reason=None,
                    detail="",
                    frames=1,
                    pairs_tried=0,
                    pairs_used=0,
                    frames_on_lanes=0,
                    seconds=0.1,
                    refined_at=datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
                    odometry=None,
                )
            )
        _migrate(engine, "upgrade", "head")
        with engine.connect() as connection:
            refinements = Table("pose_refinements", MetaData(), autoload_with=connection)
            rows = connection.execute(
                select(
                    refinements.c.sequence_id,
                    refinements.c.map_pairs_used,
                    refinements.c.map_moved_since,
                    refinements.c.map_moved_version,
                )
            )
            assert list(rows) == [("old-trip", 0, None, 0)]
        _migrate(engine, "downgrade", "0010")
        columns = _columns(engine, "pose_refinements")
        assert "map_pairs_used" in columns and "map_moved_since" not in columns
        assert "map_moved_version" not in columns
        _migrate(engine, "downgrade", "0009")
        assert "map_pairs_used" not in _columns(engine, "pose_refinements")
        assert "outcome" in _columns(engine, "pose_refinements")
