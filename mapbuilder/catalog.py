"""The road network and the map-matching results in the catalog.

Tables live on the catalog's declarative base and its migrations (`ingest/migrations`), so one
database holds frames, segments and matches. Each segment keeps its bounding box in indexed columns:
the spatial index every database here has (PostGIS is not assumed), enough to load the part of a
network around some frames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.catalog import Base
from ingest.db import Catalog
from mapbuilder.errors import NoRoadsError
from mapbuilder.roads.network import RoadNetwork
from mapbuilder.roads.segment import BBox, RoadSegment


class RoadSegmentRow(Base):
    """One road segment as imported; `retired_at` is set when a later import no longer has it."""

    __tablename__ = "road_segments"

    segment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger)
    road_class: Mapped[str] = mapped_column(String(32))
    oneway: Mapped[bool] = mapped_column(Boolean)
    lanes: Mapped[int] = mapped_column(Integer)
    width_m: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float] = mapped_column(Float)
    start_node: Mapped[int] = mapped_column(BigInteger)
    end_node: Mapped[int] = mapped_column(BigInteger)
    length_m: Mapped[float] = mapped_column(Float)
    lonlat: Mapped[str] = mapped_column(Text)  # JSON [[lon, lat], ...]
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]

    __table_args__ = (
        Index("road_segments_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),
        Index("road_segments_source", "source_id"),
    )


class FrameMatch(Base):
    """Where an accepted frame lies on the network; a null segment means it matched none."""

    __tablename__ = "frame_matches"

    frame_id: Mapped[str] = mapped_column(ForeignKey("frames.frame_id"), primary_key=True)
    segment_id: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(8))
    offset_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    matched_at: Mapped[datetime]

    __table_args__ = (Index("frame_matches_segment", "segment_id", "direction"),)


@dataclass(frozen=True)
class StoredNetwork:
    """What an import changed in the catalog."""

    added: int
    updated: int
    retired: int
    active: int


def _row(segment: RoadSegment, length_m: float, now: datetime) -> dict[str, object]:
    lons = [lon for lon, _ in segment.lonlat]
    lats = [lat for _, lat in segment.lonlat]
    return {
        "segment_id": segment.segment_id,
        "source_id": segment.source_id,
        "road_class": segment.road_class,
        "oneway": segment.oneway,
        "lanes": segment.lanes,
        "width_m": segment.width_m,
        "speed_kmh": segment.speed_kmh,
        "start_node": segment.start_node,
        "end_node": segment.end_node,
        "length_m": length_m,
        "lonlat": json.dumps([list(p) for p in segment.lonlat]),
        "min_lon": min(lons),
        "min_lat": min(lats),
        "max_lon": max(lons),
        "max_lat": max(lats),
        "imported_at": now,
        "retired_at": None,
    }


def store_network(catalog: Catalog, network: RoadNetwork, *, now: datetime) -> StoredNetwork:
    """Make `network` the catalog's: new segments added, known ones refreshed, the rest retired
    (kept, so frames matched to them still resolve)."""
    rows = {
        s.segment_id: _row(s, float(length), now)
        for s, length in zip(network.segments, network.length_m, strict=True)
    }
    with catalog.session() as session:
        existing = {row.segment_id: row for row in session.scalars(select(RoadSegmentRow))}
        added = updated = retired = 0
        for segment_id, values in rows.items():
            row = existing.get(segment_id)
            if row is None:
                session.add(RoadSegmentRow(**values))
                added += 1
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                updated += 1
        for segment_id, row in existing.items():
            if segment_id not in rows and row.retired_at is None:
                row.retired_at = now
                retired += 1
    return StoredNetwork(added, updated, retired, len(rows))


def _segment(row: RoadSegmentRow) -> RoadSegment:
    return RoadSegment(
        segment_id=row.segment_id,
        source_id=row.source_id,
        road_class=row.road_class,
        oneway=row.oneway,
        lanes=row.lanes,
        width_m=row.width_m,
        speed_kmh=row.speed_kmh,
        start_node=row.start_node,
        end_node=row.end_node,
        lonlat=tuple((float(lon), float(lat)) for lon, lat in json.loads(row.lonlat)),
    )


def load_network(catalog: Catalog, *, bbox: BBox | None = None) -> RoadNetwork:
    """The catalog's active network, or the part of it whose boxes touch `bbox`."""
    query = select(RoadSegmentRow).where(RoadSegmentRow.retired_at.is_(None))
    if bbox is not None:
        west, south, east, north = bbox
        query = query.where(
            RoadSegmentRow.max_lon >= west,
            RoadSegmentRow.min_lon <= east,
            RoadSegmentRow.max_lat >= south,
            RoadSegmentRow.min_lat <= north,
        )
    with catalog.session() as session:
        segments = [
            _segment(row) for row in session.scalars(query.order_by(RoadSegmentRow.segment_id))
        ]
    if not segments:
        msg = "the catalog holds no road network here: run `roadswarm map roads import FILE`"
        raise NoRoadsError(msg)
    return RoadNetwork(segments, source="catalog")


def network_version(catalog: Catalog) -> tuple[int, datetime | None]:
    """Changes whenever an import changes the network: workers reload their cached copy then."""
    with catalog.session() as session:
        count, latest = session.execute(
            select(func.count(), func.max(RoadSegmentRow.imported_at)).where(
                RoadSegmentRow.retired_at.is_(None)
            )
        ).one()
    return int(count), latest


def save_matches(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Insert or replace frame matches (a sequence matched again with more frames refines them)."""
    ids = [str(row["frame_id"]) for row in rows]
    existing = {
        m.frame_id: m
        for m in session.scalars(select(FrameMatch).where(FrameMatch.frame_id.in_(ids)))
    }
    for row in rows:
        match = existing.get(str(row["frame_id"]))
        if match is None:
            session.add(FrameMatch(**row))
        else:
            for name, value in row.items():
                setattr(match, name, value)
