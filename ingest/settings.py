"""Settings of the `ingest` package, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class QueueSettings(BaseSettings):
    """Where the Celery broker and result backend are, and which task modules a worker loads.

    `ROADSWARM_BROKER_URL` e.g. `redis://localhost:6379/0` or, for the embedded stack,
    `redis+socket:///tmp/.../redis.socket`; an empty `ROADSWARM_RESULT_BACKEND` means "same as the
    broker". `ROADSWARM_TASK_MODULES` (comma-separated) replaces the worker's default task modules.
    """

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_", extra="ignore")

    broker_url: str = ""
    result_backend: str = ""
    # NoDecode: read "a.tasks,b.tasks" as written rather than as JSON.
    task_modules: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_module_list(cls, value: object) -> object:
        """Accept a comma-separated string, as environment variables give it."""
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value
