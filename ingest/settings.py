"""Settings of the `ingest` package, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class QueueSettings(BaseSettings):
    """Where the Celery broker and result backend are, which task modules a worker loads, and
    the timings that bring work back after a fault.

    `ROADSWARM_BROKER_URL` e.g. `redis://localhost:6379/0` or, for the embedded stack,
    `redis+socket:///tmp/.../redis.socket`; an empty `ROADSWARM_RESULT_BACKEND` means "same as the
    broker". `ROADSWARM_TASK_MODULES` (comma-separated) replaces the worker's default task modules.
    """

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_", extra="ignore")

    broker_url: str = ""
    result_backend: str = ""
    # NoDecode: read "a.tasks,b.tasks" as written rather than as JSON.
    task_modules: Annotated[tuple[str, ...], NoDecode] = ()
    # Redis hands a message not acknowledged within this time to another worker (a worker that
    # died mid-task never acknowledges it); a task's hard time limit must stay below it, or a
    # task still running would be delivered twice.
    visibility_timeout_s: int = Field(default=3600, gt=0)
    task_time_limit_s: int = Field(default=1800, gt=0)
    # How often the scheduler (the one worker started with --beat) runs each periodic task.
    reconcile_every_s: float = Field(default=60.0, gt=0)
    tiles_sweep_every_s: float = Field(default=300.0, gt=0)
    layers_refresh_every_s: float = Field(default=3600.0, gt=0)
    rewards_bins_every_s: float = Field(default=300.0, gt=0)

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_module_list(cls, value: object) -> object:
        """Accept a comma-separated string, as environment variables give it."""
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _limit_below_visibility(self) -> QueueSettings:
        """Refuse a time limit that lets Redis redeliver a task while it still runs."""
        if self.task_time_limit_s >= self.visibility_timeout_s:
            msg = (
                f"ROADSWARM_TASK_TIME_LIMIT_S ({self.task_time_limit_s}) must be below "
                f"ROADSWARM_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s}): lower the limit "
                "or raise the timeout."
            )
            raise ValueError(msg)
        return self


class IngestSettings(BaseSettings):
    """Where the catalog and the objects are, and how the ingest API treats devices.

    Objects go to S3 (MinIO) when `ROADSWARM_S3_ENDPOINT` is set, else to the folder
    `ROADSWARM_STORE_DIR`. `ROADSWARM_UPLOAD_SECRET` signs the embedded store's upload URLs.
    """

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_", extra="ignore")

    database_url: str = ""
    store_dir: Path | None = None
    s3_endpoint: str = ""
    # The address devices use to reach MinIO, when it differs from the workers' (NAT, proxy).
    s3_public_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "roadswarm"
    s3_region: str = "us-east-1"
    s3_secure: bool = True
    upload_secret: str = ""
    upload_url_expiry_s: int = 900
    max_frame_bytes: int = 20_000_000
    request_max_skew_s: int = 300
    # When set, a device must present it to register (a closed fleet); empty means open enrolment.
    enrollment_token: str = ""
    # Bearer token MinIO's webhook target sends with bucket notifications.
    notify_token: str = ""


class ValidationSettings(BaseSettings):
    """Limits each uploaded frame is checked against (`ROADSWARM_VALIDATION_*`)."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_VALIDATION_", extra="ignore")

    min_width_px: int = 320
    min_height_px: int = 180
    max_width_px: int = 8192
    max_height_px: int = 8192
    max_speed_mps: float = 70.0
    # GNSS noise allowance subtracted from the distance between two frames before judging speed.
    position_noise_m: float = 25.0
    max_acceleration_mps2: float = 12.0
    max_future_s: float = 300.0
    max_age_days: float = 30.0
    near_duplicate_bits: int = 3
    near_duplicate_radius_m: float = 30.0
    # Another device's frame within `near_duplicate_bits` is a replay only when the pixels agree
    # this well (ingest.pixelmatch); measured by bench.bench_replay on real street photos.
    replay_min_agreement: float = 0.9
    audit_face_threshold: float = 0.5
    audit_plate_threshold: float = 0.5
    stuck_after_s: float = 600.0
    max_attempts: int = 5
