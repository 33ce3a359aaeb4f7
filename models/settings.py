"""Settings of the `models` package, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
