"""Settings of the edge app, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.blur import BlurMode
from models.settings import DetectionSettings


class PrivacySettings(DetectionSettings):
    """How faces and plates are found (see `DetectionSettings`) and hidden."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_PRIVACY_", extra="ignore")

    margin_fraction: float = 0.15
    blur: BlurMode = "gaussian"


def default_spool_dir() -> Path:
    """Where the spool lives unless told otherwise: the user's data folder, not a cache."""
    return Path.home() / ".local" / "share" / "roadswarm" / "spool"


class EdgeSettings(BaseSettings):
    """Where the device keeps its keyframes."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_EDGE_", extra="ignore")

    spool_dir: Path = default_spool_dir()
    # The ingest API this device uploads to, e.g. https://ingest.example.org
    api_url: str = ""
    # Per request: attempts, and full-jitter backoff doubling from the base up to the cap.
    upload_attempts: int = 8
    upload_backoff_base_s: float = 1.0
    upload_backoff_cap_s: float = 60.0
    identity_dir: Path = default_spool_dir().parent / "identity"
