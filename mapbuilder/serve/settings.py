"""Settings of the consumer API, read from `ROADSWARM_SERVE_*` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServeSettings(BaseSettings):
    """How `roadswarm serve` treats map consumers.

    `ROADSWARM_SERVE_URL_SECRET` signs the short-lived image URLs; every worker process of one
    deployment must share it. `ROADSWARM_SERVE_PUBLIC_LAYERS` (comma-separated) names the tile
    layers anyone may fetch without a key; those requests are neither limited nor metered.
    """

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_SERVE_", extra="ignore", frozen=True)

    url_secret: str = ""
    image_url_ttl_s: int = Field(default=300, ge=10, le=86_400)
    public_layers: Annotated[tuple[str, ...], NoDecode] = ()
    # Defaults for new keys: sustained requests per second and the burst a key may spend at once.
    rate_per_s: float = Field(default=50.0, gt=0)
    burst: int = Field(default=200, ge=1)
    credits_per_tile: int = Field(default=1, ge=0)
    credits_per_frame: int = Field(default=10, ge=0)
    max_query_area_km2: float = Field(default=25.0, gt=0)
    max_page_frames: int = Field(default=500, ge=1)
    tile_max_age_s: int = Field(default=300, ge=0)
    # Hot tiles are kept in each process for this long (0 turns the cache off), up to this size.
    tile_cache_s: float = Field(default=5.0, ge=0)
    tile_cache_mib: int = Field(default=256, ge=1)
    # A key's row is trusted this long in each process, so a revoked key stops within it.
    key_cache_s: float = Field(default=5.0, ge=0, le=300)
    # Usage is added up in each process and written to the catalog this often (see metering.py).
    usage_flush_s: float = Field(default=1.0, gt=0, le=60)
    # Origins allowed to call the API from a browser; "*" suits a public map API.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)

    @field_validator("public_layers", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept a comma-separated string, as environment variables give it."""
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value
