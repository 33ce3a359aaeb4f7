"""The summary part of the rewards benchmark: an epoch closed from PostgreSQL's per-bin summary.

The synthetic epoch (`bench._rewards_data`) is reduced to the summary's rows in numpy (one row per
device and bin, as `rewards.binsummary` keeps them; digests are random, their content costs
nothing) and written with binary COPY, history included, once. Each run is then a fresh process
pinned to 2 cores that runs `close_epoch` end to end (ledger sync of the devices, refresh of the
summary, loading by binary COPY, scoring, allocation, roots, signing, append); the ledger is
emptied between runs. Peak RSS is the run's own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from bench._rewards_catalog import EPOCH, LONG_AGO, _bulk, _postgres, _segment_rows
from bench._rewards_data import SyntheticEpoch, synthetic_epoch
from ingest.catalog import Device
from ingest.db import Catalog
from mapbuilder.catalog import RoadSegmentRow
from rewards.binload import load_summary
from rewards.binrows import epoch_start_ms, pass_keys_since, unclipped_bins
from rewards.binsummary import refresh_bins
from rewards.close import close_epoch
from rewards.inputs import load_segments
from rewards.pgcopy import SIGNATURE
from rewards.settings import RewardParams

PG_DAYS_FROM_UNIX = 10_957  # 2000-01-01, PostgreSQL's day zero
DAY_MS = 86_400_000
COLUMNS = (
    ("epoch", ">i4"),
    ("counted_epoch", ">i4"),
    ("segment_id", "S32"),
    ("direction", ">i2"),
    ("bin", ">i4"),
    ("device_id", "S64"),
    ("frames", ">i4"),
    ("first_ms", ">i8"),
    ("last_ms", ">i8"),
    ("best_key", ">i8"),
    ("digest", "S32"),
)
COPY_SQL = f"COPY reward_bins ({', '.join(n for n, _ in COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _copy_dtype() -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in COLUMNS:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    return np.dtype(fields)


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order and run starts of an int64 key."""
    order = np.argsort(keys, kind="stable")
    change = np.ones(len(order), bool)
    change[1:] = keys[order][1:] != keys[order][:-1]
    return order, np.flatnonzero(change)


def _rows(
    data: SyntheticEpoch, params: RewardParams, *, history: bool, rng: np.random.Generator
) -> np.ndarray:  # fmt: skip
    """The summary rows of the epoch's frames (or of the history, given random devices)."""
    if history:
        past = data.history
        n = len(past.time_ms)
        segment, direction, offset, times = (
            past.segment,
            past.direction,
            past.offset_m,
            past.time_ms,
        )
        device = rng.integers(0, len(data.frames.devices), n)
        distance, hdop = np.ones(n), np.ones(n)
    else:
        f = data.frames
        segment, direction, offset, times = f.segment, f.direction, f.offset_m, f.time_ms
        device, distance, hdop = f.device.astype(np.int64), f.distance_m, f.hdop
    epoch = epoch_start_ms(times)
    bins = unclipped_bins(offset, params.bin_length_m)
    keys = pass_keys_since(distance, hdop, times, epoch, params)
    week = (epoch - epoch.min()) // (7 * DAY_MS)
    group = (((week * 2_000_000 + segment) * 2 + direction) * 4096 + bins) * 1024 + device
    order, starts = _group(group.astype(np.int64))
    first = order[starts]
    out = np.zeros(len(starts), _copy_dtype())
    out["count"] = len(COLUMNS)
    for name, kind in COLUMNS:
        out[f"{name}_length"] = np.dtype(kind).itemsize
    days = epoch[first] // DAY_MS - PG_DAYS_FROM_UNIX
    out["epoch"], out["counted_epoch"] = days, days
    out["segment_id"] = np.array(data.segments.segment_ids, "S32")[segment[first]]
    out["direction"], out["bin"] = direction[first], bins[first]
    out["device_id"] = np.array(data.frames.devices, "S64")[device[first]]
    out["frames"] = np.diff(np.append(starts, len(order)))
    out["first_ms"] = np.minimum.reduceat(times[order], starts)
    out["last_ms"] = np.maximum.reduceat(times[order], starts)
    out["best_key"] = np.minimum.reduceat(keys[order], starts)
    out["digest"] = rng.integers(0, 256, (len(starts), 32), dtype=np.uint8).view("S32").ravel()
    return out


def _copy_rows(url: str, rows: np.ndarray) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        with cursor.copy(COPY_SQL) as copy:
            copy.write(SIGNATURE + bytes(8))
            step = 500_000
            for i in range(0, len(rows), step):
                copy.write(rows[i : i + step].tobytes())
            copy.write(b"\xff\xff")
        connection.commit()


def fill_summary(
    url: str, frames: int, segments: int, devices: int, history: int
) -> dict[str, int]:
    """Segments, devices, the layout row and the summary rows of one synthetic epoch."""
    params = RewardParams()
    data = synthetic_epoch(
        frames=frames, segments=segments, devices=devices, history=history, seed=3, epoch=EPOCH
    )
    catalog = Catalog.connect(url)
    _bulk(catalog, RoadSegmentRow, _segment_rows(data))
    device_rows = [
        {"device_id": d, "public_key": "00" * 32, "registered_at": LONG_AGO,
         "revoked_at": None, "last_counter": 1}
        for d in data.frames.devices
    ]  # fmt: skip
    _bulk(catalog, Device, device_rows)
    refresh_bins(catalog, params)  # records the layout; nothing is marked
    rng = np.random.default_rng(11)
    epoch_rows = _rows(data, params, history=False, rng=rng)
    history_rows = _rows(data, params, history=True, rng=rng)
    _copy_rows(url, epoch_rows)
    _copy_rows(url, history_rows)
    with catalog.session() as session:
        session.execute(text("ANALYZE"))
    catalog.dispose()
    return {"epoch_rows": len(epoch_rows), "history_rows": len(history_rows)}


def close_run(url: str) -> dict[str, float]:
    """One close from the summary in this (fresh, pinned) process; seconds and peak RSS."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    catalog = Catalog.connect(url)
    with catalog.session() as session:
        session.execute(text("DELETE FROM ledger_records"))
    params = RewardParams()
    started = time.perf_counter()
    with catalog.session() as session:
        segments = load_segments(session)
        loaded = load_summary(session, EPOCH, segments, params)
    load_s = time.perf_counter() - started
    del loaded, segments
    started = time.perf_counter()
    closed = close_epoch(
        catalog,
        EPOCH,
        params,
        key=Ed25519PrivateKey.generate(),
        code_version="bench",
        now=EPOCH.end + timedelta(hours=params.grace_period_h),
    )
    close_s = time.perf_counter() - started
    statement = closed.record.body()["statement"]
    catalog.dispose()
    return {
        "load_s": round(load_s, 3),
        "close_s": round(close_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frames": statement["frames"],
        "rows": int(closed.record.body()["details"]["stats"]["passes"]),
    }


def summary_runs(
    admin_url: str, *, frames: int, segments: int, devices: int, history: int, repeats: int
) -> dict[str, Any] | None:
    """Fill a fresh PostgreSQL database once, then `repeats` closes, each in its own process."""
    with _postgres(admin_url) as url:
        if url is None:
            return None
        started = time.perf_counter()
        filled = fill_summary(url, frames, segments, devices, history)
        fill_s = time.perf_counter() - started
        runs = []
        for _ in range(repeats):
            command = [sys.executable, "-m", "bench.bench_rewards", "--summary-child", url]
            env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        median = {key: float(np.median([float(r[key]) for r in runs])) for key in runs[0]}
        return {**filled, "fill_s": round(fill_s, 1), "runs": runs, "median": median}
