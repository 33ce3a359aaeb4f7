"""Request and response bodies of the consumer API (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class GeoJsonPolygon(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in WGS84 [lon, lat]."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="rings of [lon, lat] positions, as GeoJSON has them")


class ImageryQuery(BaseModel):
    """Frames inside a polygon, captured in [start, end), optionally facing a heading."""

    model_config = ConfigDict(extra="forbid")

    geometry: GeoJsonPolygon
    start: AwareDatetime
    end: AwareDatetime
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    tolerance_deg: float = Field(default=45.0, ge=0, le=180)
    limit: int = Field(default=100, ge=1)
    cursor: str | None = Field(default=None, max_length=400)


class FrameOut(BaseModel):
    """One published frame and a short-lived URL to its blurred image."""

    frame_id: str
    lon: float
    lat: float
    heading_deg: float
    captured_at: AwareDatetime
    sequence_id: str
    sequence_index: int
    segment_id: str | None
    image_url: str
    image_url_expires_at: AwareDatetime


class FramePage(BaseModel):
    """A page of frames; pass `next_cursor` back for the next page (null at the end)."""

    frames: list[FrameOut]
    next_cursor: str | None


class DayUsageOut(BaseModel):
    """One UTC day of a key's use."""

    day: str
    tiles: int
    frames: int
    credits: int


class UsageOut(BaseModel):
    """The calling key's use (never another key's)."""

    key_id: str
    name: str
    credits_per_tile: int
    credits_per_frame: int
    total_credits: int
    days: list[DayUsageOut]


class ErrorOut(BaseModel):
    """Every error: a code for programs and a message a person can act on."""

    error: str
    message: str
