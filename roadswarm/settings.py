"""Settings of the composition layer, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    """The per-user cache directory for downloaded model weights and demo worlds."""
    return Path.home() / ".cache" / "roadswarm"


class RoadswarmSettings(BaseSettings):
    """Process-wide settings: logging and where roadswarm keeps its working files."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_", extra="ignore")

    log_level: str = "WARNING"
    cache_dir: Path = default_cache_dir()
