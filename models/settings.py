"""Settings of the `models` package, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.runtime import cores_each


def default_models_dir() -> Path:
    """The per-user folder verified weights are installed in."""
    return Path.home() / ".cache" / "roadswarm" / "models"


class ModelSettings(BaseSettings):
    """Where model weights live: `ROADSWARM_MODELS_DIR` (default `~/.cache/roadswarm/models`)."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_", extra="ignore")

    models_dir: Path = Field(default_factory=default_models_dir)

    @field_validator("models_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        """Accept `~/...` as a shell would, since environment variables are not expanded."""
        return value.expanduser()


class DetectionSettings(BaseSettings):
    """How faces and plates are found (`ROADSWARM_PRIVACY_*`): by the edge before blurring, and by
    the server's privacy audit of what the edge uploaded."""

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
    # The detail band: rows around the horizon where a target can be too small for the overview,
    # per task, for a frame whose long side is 1920 px (scaled with the long side, as the size of
    # an overview pixel is). A target of height H at elevation e, seen by a camera at height c,
    # lies (c - e) / H of its own heights below the horizon at any distance, and it needs the band
    # only while under ~3x the model's smallest size in the overview (~30-36 px here). Faces
    # (H 0.16 m, e 0.9-2.0 m, c 1.2-1.6 m) lie within ~5 heights of it either way; plates (H 0.11 m,
    # e 0.25-1.5 m) up to ~10 heights below and barely above. ~40 px more for pitch (slopes,
    # braking) on each side.
    face_band_above_px: int = Field(default=192, ge=0)
    face_band_below_px: int = Field(default=192, ge=0)
    plate_band_above_px: int = Field(default=96, ge=0)
    plate_band_below_px: int = Field(default=352, ge=0)
    merge_iou: float = 0.3

    def sharing_cores(self, processes: int) -> Self:
        """These settings for one of `processes` processes (or frames) run side by side: unless
        threads are configured, each detector call gets an equal share of the cores."""
        if self.threads:
            return self
        return self.model_copy(update={"threads": cores_each(processes)})
