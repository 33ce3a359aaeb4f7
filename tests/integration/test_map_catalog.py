"""The road network in the catalog (SQLite and PostgreSQL) and the matching stage writing where
each accepted frame lies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from ingest.catalog import Frame, FrameState, utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import register_device
from ingest.protocol import FrameEntry, Registration, frame_object_key
from ingest.states import SequenceKey
from ingest.storage import LocalObjectStore
from mapbuilder.catalog import FrameMatch, load_network, network_version, store_network
from mapbuilder.match_stage import match_sequences
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.roads import RoadNetwork, read_network
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg
from tests.map_fixtures import drive, walk


def test_store_and_load_round_trip(catalog: Catalog, grid_osm: Path) -> None:
    """Stored segments come back with the same ids, classes and geometry; a bbox loads a part."""
    network = read_network(grid_osm)
    stored = store_network(catalog, network, now=utcnow())
    assert (stored.added, stored.updated, stored.retired) == (len(network.segments), 0, 0)
    loaded = load_network(catalog)
    assert [s.segment_id for s in loaded.segments] == sorted(s.segment_id for s in network.segments)
    original = {s.segment_id: s for s in network.segments}
    for segment in loaded.segments:
        assert segment == original[segment.segment_id]
    lon = [p[0] for s in network.segments for p in s.lonlat]
    lat = [p[1] for s in network.segments for p in s.lonlat]
    corner = (min(lon) - 1e-4, min(lat) - 1e-4, min(lon) + 1e-4, min(lat) + 1e-4)
    part = load_network(catalog, bbox=corner)
    assert 0 < len(part.segments) < len(network.segments)


def test_reimport_retires_what_is_gone_and_changes_the_version(
    catalog: Catalog, grid_osm: Path
) -> None:
    """Importing a smaller network retires the missing segments (kept for old matches)."""
    network = read_network(grid_osm)
    store_network(catalog, network, now=utcnow())
    before = network_version(catalog)
    smaller = RoadNetwork(network.segments[:-3], source="smaller")
    result = store_network(catalog, smaller, now=utcnow() + timedelta(seconds=1))
    assert (result.added, result.updated, result.retired) == (0, len(network.segments) - 3, 3)
    assert len(load_network(catalog).segments) == len(network.segments) - 3
    assert network_version(catalog) != before


def _accepted_drive(
    catalog: Catalog, tmp_path: Path, network: RoadNetwork
) -> tuple[list[str], list[tuple[str, str]]]:
    """Frames of a 400 m drive on the grid, committed and marked accepted; their true segments."""
    route = drive(network, walk(network, 400, seed=3), speed_mps=8.0, rate_hz=1.0)
    device = FakeDevice()
    info, _ = register_device(catalog, Registration(**device.registration()), now=utcnow())
    store = LocalObjectStore(tmp_path / "store")
    start = datetime.now(UTC) - timedelta(hours=1)
    frames = [make_jpeg(i) for i in range(len(route.lon))]
    entries = []
    for index, data in enumerate(frames):
        store.put_bytes(frame_object_key(device.device_id, frame_id(data)), data)
        entries.append(
            FrameEntry(
                frame_id=frame_id(data),
                size_bytes=len(data),
                capture_time=start
                + timedelta(seconds=float(route.time_s[index] - route.time_s[0])),
                lat=float(route.lat[index]),
                lon=float(route.lon[index]),
                heading_deg=0.0,
                speed_mps=8.0,
                sequence_id="grid-drive",
                index=index,
                model_versions={},
            )
        )
    assert len(
        commit_batch(catalog, store, info, device.manifest(entries), utcnow()).new_frame_ids
    ) == len(entries)
    with catalog.session() as session:
        session.execute(update(Frame).values(state=FrameState.ACCEPTED))
    return [e.frame_id for e in entries], route.truth(network)


def test_matching_stores_each_frames_segment(
    catalog: Catalog, grid_osm: Path, tmp_path: Path
) -> None:
    """Accepted frames of a drive land on their true directed segments; a second run replaces."""
    network = read_network(grid_osm)
    store_network(catalog, network, now=utcnow())
    ids, truth = _accepted_drive(catalog, tmp_path, network)
    matcher = MapMatcher(load_network(catalog))
    with catalog.session() as session:
        keys = sorted({(f.device_id, f.sequence_id) for f in session.scalars(select(Frame))})
    first = match_sequences(catalog, matcher, keys)
    assert first.frames == len(ids)
    with catalog.session() as session:
        found = {
            m.frame_id: (m.segment_id, m.direction) for m in session.scalars(select(FrameMatch))
        }
    on_truth = sum(found[fid] == true for fid, true in zip(ids, truth, strict=True))
    assert on_truth / len(ids) >= 0.9, (on_truth, len(ids))
    again = match_sequences(catalog, matcher, keys)
    assert again.frames == len(ids)
    with catalog.session() as session:
        assert len(session.scalars(select(FrameMatch)).all()) == len(ids)


class _OtherWorkerStoresFirst:
    """A matcher whose first run, between reading the sequence and storing it, lets another
    worker accept the sequence's `later` frames and match the whole of it."""

    def __init__(
        self, matcher: MapMatcher, catalog: Catalog, key: SequenceKey, later: list[str]
    ) -> None:
        self.matcher, self.catalog, self.key, self.later = matcher, catalog, key, later
        self.runs: list[int] = []

    def match(self, lon: Any, *args: Any, **kwargs: Any) -> Any:
        self.runs.append(len(lon))
        if len(self.runs) == 1:
            with self.catalog.session() as session:
                accept = update(Frame).where(Frame.frame_id.in_(self.later))
                session.execute(accept.values(state=FrameState.ACCEPTED))
            match_sequences(self.catalog, self.matcher, [self.key])
        return self.matcher.match(lon, *args, **kwargs)


def _matches(catalog: Catalog) -> dict[str, tuple[Any, ...]]:
    with catalog.session() as session:
        return {
            m.frame_id: (m.segment_id, m.direction, m.offset_m, m.distance_m)
            for m in session.scalars(select(FrameMatch))
        }


def test_a_sequence_that_grew_while_it_was_matched_is_matched_again(
    catalog: Catalog, grid_osm: Path, tmp_path: Path
) -> None:
    """Two workers match one sequence at once: one reads it before its later frames are
    accepted, the other matches all of it and stores first. The first stores, sees the sequence
    grew, and matches it again: the matches are those of one run over all the frames."""
    network = read_network(grid_osm)
    store_network(catalog, network, now=utcnow())
    ids, _ = _accepted_drive(catalog, tmp_path, network)
    later = ids[len(ids) // 2 :]
    with catalog.session() as session:
        pending = update(Frame).where(Frame.frame_id.in_(later))
        session.execute(pending.values(state=FrameState.VALIDATED))
    with catalog.session() as session:
        first = session.scalars(select(Frame)).first()
        assert first is not None
        keys = [(first.device_id, first.sequence_id)]
    matcher = MapMatcher(load_network(catalog))
    racing = _OtherWorkerStoresFirst(matcher, catalog, keys[0], later)
    result = match_sequences(catalog, racing, keys)  # type: ignore[arg-type]
    # Its first run read half the frames; the second, after storing, all of them.
    assert racing.runs == [len(ids) - len(later), len(ids)]
    assert result.frames == len(ids)
    after_race = _matches(catalog)
    match_sequences(catalog, matcher, keys)
    assert after_race == _matches(catalog) and len(after_race) == len(ids)


def test_import_to_catalog_command(grid_osm: Path, tmp_path: Path) -> None:
    """`map roads import --to-catalog` makes the file's network the catalog's."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    env = {**os.environ, "ROADSWARM_DATABASE_URL": url}
    Catalog.connect(url).dispose()  # migrated, as `roadswarm ingest migrate` would
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roadswarm",
            "map",
            "roads",
            "import",
            str(grid_osm),
            "--to-catalog",
            "--json",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    catalog = Catalog.connect(url, migrate_schema=False)
    assert summary["catalog"]["added"] == summary["segments"] == len(load_network(catalog).segments)
    catalog.dispose()
