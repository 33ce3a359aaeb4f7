"""Objects that go missing or are damaged in the store after upload: before validation (ingest
re-hashes every object) and after the frames were accepted and their tiles built (the tile
builder checks each frame's bytes against its id when the tiles are rebuilt). Each one is
detected, quarantined with its reason, reported by `roadswarm ops quarantine list`, and left out
of the map; the other frames lose nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from ingest.catalog import Frame
from ingest.protocol import frame_object_key
from ingest.storage import LocalObjectStore
from mapbuilder.tiles.context import TileContext
from mapbuilder.tiles.pipeline import build_dirty
from mapbuilder.tiles.posing import mark_everything
from tests.ingest_helpers import catalog_at
from tests.integration.edge_drive import roadswarm
from tests.reliability.pipeline import DEVICE, Drive, PipelineStack, seed, send_drive, wait_settled
from tests.reliability.services import RedisServer

SETTLE_S = 120
pytestmark = pytest.mark.slow
BEFORE_VALIDATION = {0: "object_missing", 1: "hash_mismatch", 2: "hash_mismatch"}
AFTER_ACCEPTANCE = {3: "object_missing", 4: "hash_mismatch"}


def damage(store: LocalObjectStore, frame_id: str, how: str) -> None:
    """Delete the frame's object, flip bytes in its middle (same size: it still decodes), or cut
    it in half — behind the store's back, as a failing disk or a mistaken operator would."""
    path = store.root / frame_object_key(DEVICE, frame_id)
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if how == "flip":
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(b ^ 0x5A for b in data[middle : middle + 8])
    else:
        del data[len(data) // 2 :]
    info = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def still_decodes(store: LocalObjectStore, frame_id: str) -> bool:
    """Whether OpenCV still makes an image of the damaged bytes (so only a hash check tells)."""
    data = (store.root / frame_object_key(DEVICE, frame_id)).read_bytes()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def imagery(store: LocalObjectStore) -> dict[str, bytes]:
    """Every stored imagery tile."""
    return {o.key: store.get_bytes(o.key) for o in store.list("tiles/imagery/")}


def test_objects_lost_or_damaged_in_the_store_are_quarantined_and_reported(
    pipeline_drive: Drive, tmp_path: Path
) -> None:
    """Three objects damaged before validation, two after acceptance: five frames quarantined
    with their reasons and listed by the CLI; the tiles are a clean rebuild without them."""
    started = time.monotonic()
    drive = dataclasses.replace(pipeline_drive, sequences=pipeline_drive.sequences[:1])
    ids = drive.batches()[0]
    store = LocalObjectStore(tmp_path / "store")
    with RedisServer(tmp_path / "redis") as redis, catalog_at("sqlite", tmp_path) as catalog:
        seed(catalog, store, drive)
        for index, how in zip(BEFORE_VALIDATION, ("delete", "flip", "cut"), strict=True):
            damage(store, ids[index], how)
        url = str(catalog.engine.url)
        with PipelineStack(
            broker_url=redis.url, database_url=url, store_dir=store.root, workdir=tmp_path
        ) as stack:
            send_drive(redis.url, drive)
            wait_settled(catalog, SETTLE_S)
            for index, how in zip(AFTER_ACCEPTANCE, ("delete", "flip"), strict=True):
                damage(store, ids[index], how)
            assert still_decodes(store, ids[4])
            # A new worker (nothing decoded in memory), and every tile to be rebuilt, as after a
            # change of settings (`map tiles build --all`): the sweep queues the blocks.
            stack.crash_worker()
            mark_everything(TileContext(catalog, store))
            wait_settled(catalog, SETTLE_S)
        with catalog.session() as session:
            states = {
                fid: state.value
                for fid, state in session.execute(select(Frame.frame_id, Frame.state))
            }
        listed = roadswarm(
            "ops", "quarantine", "list", "--json", env={**os.environ, "ROADSWARM_DATABASE_URL": url}
        )
        assert listed.returncode == 0, listed.stderr
        worker_tiles = imagery(store)
        copy = LocalObjectStore(tmp_path / "rebuilt")
        shutil.copytree(store.root, copy.root, dirs_exist_ok=True)
        rebuild = TileContext(catalog, copy)
        mark_everything(rebuild)
        build_dirty(rebuild)
    entries = {e["frame_id"]: e for e in json.loads(listed.stdout)}
    damaged = {ids[i]: reason for i, reason in {**BEFORE_VALIDATION, **AFTER_ACCEPTANCE}.items()}
    print(
        "storage faults:",
        json.dumps(
            {
                "damaged_before_validation": len(BEFORE_VALIDATION),
                "damaged_after_acceptance": len(AFTER_ACCEPTANCE),
                "quarantined_for_storage": sum(
                    e["reason"] in damaged.values() for e in entries.values()
                ),
                "frames": len(states),
                "imagery_tiles": len(worker_tiles),
                "run_s": round(time.monotonic() - started, 1),
            }
        ),
    )
    for frame_id, reason in damaged.items():
        assert states[frame_id] == "quarantined"
        assert entries[frame_id]["reason"] == reason and entries[frame_id]["detail"]
    undamaged = [fid for fid in ids if fid not in damaged]
    assert all(states[fid] in ("accepted", "quarantined") for fid in undamaged)
    assert not {fid for fid in undamaged if entries.get(fid, {}).get("reason") in damaged.values()}
    assert worker_tiles and imagery(copy) == worker_tiles
