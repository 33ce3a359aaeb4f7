"""Settings of the edge app, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.blur import BlurMode


class PrivacySettings(BaseSettings):
    """How faces and plates are found and hidden."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_PRIVACY_", extra="ignore")

    face_model: str = "centerface"
    plate_model: str = "platedet-yolov8s-seg"
    # Low thresholds: a missed face or plate is a privacy failure, an extra blur costs little.
    face_threshold: float = 0.2
    plate_threshold: float = 0.25
    provider: str | None = None
    # Use the fastest variant `roadswarm models prepare` offered (measured to agree with the original).
    use_prepared: bool = True
    threads: int = 0
    overview_px: int = 640
    strip_max_rows: int = 640
    tile_overlap_px: int = 160
    band_above_horizon_px: int = 160
    band_below_horizon_px: int = 352
    margin_fraction: float = 0.15
    blur: BlurMode = "gaussian"
    merge_iou: float = 0.3


def default_spool_dir() -> Path:
    """Where the spool lives unless told otherwise: the user's data folder, not a cache."""
    return Path.home() / ".local" / "share" / "roadswarm" / "spool"


class EdgeSettings(BaseSettings):
    """Where the device keeps its keyframes."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_EDGE_", extra="ignore")

    spool_dir: Path = default_spool_dir()
    identity_dir: Path = default_spool_dir().parent / "identity"
