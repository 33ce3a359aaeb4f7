"""Settings of the edge app, read from `ROADSWARM_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.blur import BlurMode
from models.settings import DetectionSettings


class PrivacySettings(DetectionSettings):
    """How faces and plates are found (see `DetectionSettings`) and hidden."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_PRIVACY_", extra="ignore")

    margin_fraction: float = 0.15
    blur: BlurMode = "gaussian"
    # Keyframes of a recorded drive anonymized at once, each on one thread (0: one per usable
    # core). Whole frames in parallel keep every core busy; one frame split over cores by
    # onnxruntime waits on its slowest thread at every layer.
    parallel_frames: int = Field(default=0, ge=0)


def default_spool_dir() -> Path:
    """Where the spool lives unless told otherwise: the user's data folder, not a cache."""
    return Path.home() / ".local" / "share" / "roadswarm" / "spool"


class EdgeSettings(BaseSettings):
    """Where the device keeps its keyframes, how it uploads them, and how `edge run` captures."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_EDGE_", extra="ignore")

    spool_dir: Path = default_spool_dir()
    # The ingest API this device uploads to, e.g. https://ingest.example.org
    api_url: str = ""
    # Per request: attempts, and full-jitter backoff doubling from the base up to the cap.
    upload_attempts: int = 8
    upload_backoff_base_s: float = 1.0
    upload_backoff_cap_s: float = 60.0
    identity_dir: Path = default_spool_dir().parent / "identity"

    # `edge run` (live capture). The camera: an index (0) or a device path or pipeline.
    camera: str = "0"
    camera_clock_offset_s: float = 0.0  # added to the system clock's frame times
    gpsd: str = "127.0.0.1:2947"
    # A receiver on a serial port (e.g. /dev/ttyACM0) read directly; when set, used instead of gpsd.
    nmea_serial: str = ""
    nmea_baud: int = 9600
    # u-blox CW jamming indicator (0-255) from which a fix counts as jammed.
    gnss_jam_limit: int = 100
    # Without a fix for this long, frames waiting for GNSS are placed with what is known.
    gnss_stall_s: float = 5.0
    # Frames held in memory while their fix is still to come (about 6 MB each at 1080p).
    max_pending_frames: int = 90
    # Keyframes, raw candidates and the database together; 0 means no limit but the disk.
    quota_mb: float = 0.0
    # When full: evict the oldest raw candidates, then unbatched keyframes (else capture pauses).
    allow_evict: bool = False
    upload_interval_s: float = 60.0
