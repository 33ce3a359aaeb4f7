"""The catalog part of the rewards benchmark: bulk-filled SQLite and PostgreSQL catalogs, loading
timed on its own, then a whole `close_epoch`."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, insert, text

from bench._rewards_data import SyntheticEpoch, synthetic_epoch
from ingest.catalog import Batch, Device, Frame, FrameState
from ingest.db import Catalog
from mapbuilder.catalog import FrameMatch, RoadSegmentRow
from rewards.close import close_epoch
from rewards.epochs import Epoch
from rewards.inputs import load_frames, load_history, load_segments
from rewards.settings import RewardParams

EPOCH = Epoch.parse("2026-11-23")
CHUNK = 20_000
LONG_AGO = EPOCH.start - timedelta(days=90)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _bulk(catalog: Catalog, model: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        with catalog.session() as session:
            session.execute(insert(_table(model)), rows[i : i + CHUNK])


def _segment_rows(data: SyntheticEpoch) -> list[dict[str, Any]]:
    table = data.segments
    rows = []
    for i, segment_id in enumerate(table.segment_ids):
        lon, lat = float(table.center_lon[i]), float(table.center_lat[i])
        rows.append(
            {
                "segment_id": segment_id, "source_id": i, "road_class": table.road_class[i],
                "oneway": False, "lanes": 2, "width_m": 6.0, "speed_kmh": 30.0,
                "start_node": 2 * i, "end_node": 2 * i + 1, "length_m": float(table.length_m[i]),
                "lonlat": json.dumps([[lon, lat], [lon + 0.001, lat]]), "min_lon": lon,
                "min_lat": lat, "max_lon": lon + 0.001, "max_lat": lat,
                "imported_at": LONG_AGO, "retired_at": None,
            }
        )  # fmt: skip
    return rows


def _frame_rows(data: SyntheticEpoch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Frame and match rows: the epoch's frames, then the history (given random devices)."""
    frames, history = data.frames, data.history
    rng = np.random.default_rng(5)
    ids = [bytes(r).hex() for r in frames.frame_ids]
    ids += [
        bytes(r).hex() for r in rng.integers(0, 256, (len(history.time_ms), 32), dtype=np.uint8)
    ]
    devices = np.concatenate(
        [frames.device, rng.integers(0, len(frames.devices), len(history.time_ms))]
    )
    segment = np.concatenate([frames.segment, history.segment])
    direction = np.concatenate([frames.direction, history.direction])
    offset = np.concatenate([frames.offset_m, history.offset_m])
    times = np.concatenate([frames.time_ms, history.time_ms])
    hdop = np.concatenate([frames.hdop, np.full(len(history.time_ms), 1.0)])
    frame_rows, match_rows = [], []
    for i, frame_id in enumerate(ids):
        at = datetime.fromtimestamp(int(times[i]) / 1000, UTC)
        device_id = frames.devices[int(devices[i])]
        frame_rows.append(
            {
                "frame_id": frame_id, "device_id": device_id, "batch_counter": 1,
                "object_key": f"frames/{device_id}/{frame_id}.jpg", "size_bytes": 1000,
                "sequence_id": "s", "sequence_index": i, "capture_time": at, "lat": 60.1,
                "lon": 24.9, "altitude_m": None, "heading_deg": 0.0, "speed_mps": 10.0,
                "hdop": None if np.isnan(hdop[i]) else float(hdop[i]), "model_versions": {},
                "state": FrameState.ACCEPTED, "state_since": at, "attempts": 0,
                "received_at": at + timedelta(minutes=10),
            }
        )  # fmt: skip
        match_rows.append(
            {
                "frame_id": frame_id, "segment_id": data.segments.segment_ids[int(segment[i])],
                "direction": "backward" if direction[i] else "forward", "offset_m": float(offset[i]),
                "distance_m": float(frames.distance_m[i]) if i < len(frames) else 1.0,
                "matched_at": at + timedelta(minutes=20),
            }
        )  # fmt: skip
    return frame_rows, match_rows


def fill(catalog: Catalog, frames: int) -> None:
    """Segments, 100 devices with one batch each, `frames` epoch frames and a quarter as many
    earlier ones, every one accepted and matched."""
    data = synthetic_epoch(
        frames=frames,
        segments=max(1_000, frames // 20),
        devices=100,
        history=frames // 4,
        seed=9,
        epoch=EPOCH,
    )
    _bulk(catalog, RoadSegmentRow, _segment_rows(data))
    _bulk(
        catalog,
        Device,
        [
            {
                "device_id": d,
                "public_key": "00" * 32,
                "registered_at": LONG_AGO,
                "revoked_at": None,
                "last_counter": 1,
            }
            for d in data.frames.devices
        ],
    )
    _bulk(
        catalog,
        Batch,
        [
            {
                "device_id": d,
                "counter": 1,
                "manifest_sha256": "0" * 64,
                "signed_manifest": "{}",
                "frame_count": 1,
                "committed_at": LONG_AGO,
            }
            for d in data.frames.devices
        ],
    )
    frame_rows, match_rows = _frame_rows(data)
    _bulk(catalog, Frame, frame_rows)
    _bulk(catalog, FrameMatch, match_rows)
    # Statistics, as autovacuum (PostgreSQL) or an operator's ANALYZE (SQLite) would have them.
    with catalog.session() as session:
        session.execute(text("ANALYZE"))


def measure(catalog: Catalog, frames: int) -> dict[str, float]:
    """Fill the catalog, time loading the epoch's arrays, then a whole close."""
    fill(catalog, frames)
    cutoff = EPOCH.closable_at(48)
    started = time.perf_counter()
    with catalog.session() as session:
        segments = load_segments(session)
        loaded = load_frames(session, EPOCH, cutoff, segments)
        history = load_history(session, EPOCH, cutoff, segments)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    close_epoch(
        catalog,
        EPOCH,
        RewardParams(),
        key=Ed25519PrivateKey.generate(),
        code_version="bench",
        now=cutoff,
    )
    close_s = time.perf_counter() - started
    rows = len(loaded) + len(history.time_ms)
    return {"frames": len(loaded), "history": len(history.time_ms), "load_s": round(load_s, 3),
            "load_frames_per_s": round(rows / load_s), "close_s": round(close_s, 3)}  # fmt: skip


@contextmanager
def _postgres(admin_url: str) -> Iterator[str | None]:
    name = f"roadswarm_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield (
            admin_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
            + f"/{name}"
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def catalog_runs(frames: int, pg_admin_url: str) -> dict[str, dict[str, float]]:
    """The catalog part on SQLite, and on PostgreSQL when one answers."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-rewards-") as tmp:
        catalog = Catalog.connect(f"sqlite:///{Path(tmp) / 'catalog.sqlite3'}")
        results["sqlite"] = measure(catalog, frames)
        catalog.dispose()
    with _postgres(pg_admin_url) as url:
        if url is not None:
            catalog = Catalog.connect(url)
            results["postgresql"] = measure(catalog, frames)
            catalog.dispose()
    return results
