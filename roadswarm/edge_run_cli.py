"""`roadswarm edge run`: live capture on the device (registered on `roadswarm edge`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from edge.anonymize import Anonymizer
from edge.capture.camera import CameraSource
from edge.capture.images import ImageFolderSource
from edge.capture.source import FrameSource
from edge.capture.video import VideoFileSource
from edge.capture_loop import CaptureOptions
from edge.client import IngestClient, RetryPolicy
from edge.gnss.feed import FixFeed, GpsdAddressError, GpsdFeed, LogFeed, parse_gpsd_address
from edge.gnss.serial_feed import SerialNmeaFeed
from edge.identity import load_identity
from edge.keyframes import KeyframeRules, PrivacyZones
from edge.quota import Quota
from edge.rawcrypt import RawCipher, raw_key
from edge.run import LiveInputs, RunOptions, RunReport, run_live
from edge.settings import EdgeSettings, PrivacySettings
from models.settings import ModelSettings
from roadswarm.edge_cli import parse_start, read_camera, read_gnss_log, read_horizon
from roadswarm.errors import UserInputError
from roadswarm.output import emit, json_option

FIRST_FIX_WAIT_S = 120.0  # a cold receiver can take this long to its first fix


@dataclass(frozen=True)
class Sources:
    """Where frames and fixes come from, as given on the command line."""

    camera: str | None
    video: Path | None
    images: Path | None
    image_rate_hz: float | None
    start: str | None
    realtime: bool
    gpsd: str | None
    nmea_serial: str | None
    baud: int | None
    nmea: Path | None
    gpx: Path | None


def open_feed(sources: Sources, settings: EdgeSettings) -> FixFeed:
    """A recorded log (replayed as if live), a serial NMEA receiver, or gpsd (the default:
    ROADSWARM_EDGE_NMEA_SERIAL if set, else ROADSWARM_EDGE_GPSD)."""
    if sum(bool(s) for s in (sources.gpsd, sources.nmea_serial, sources.nmea, sources.gpx)) > 1:
        msg = "give one GNSS source: --gpsd, --nmea-serial, --nmea or --gpx"
        raise UserInputError(msg)
    if sources.nmea or sources.gpx:
        return LogFeed(read_gnss_log(sources.gpx, sources.nmea))
    serial_port = sources.nmea_serial or ("" if sources.gpsd else settings.nmea_serial)
    if serial_port:
        return open_serial_feed(serial_port, sources.baud or settings.nmea_baud)
    try:
        host, port = parse_gpsd_address(sources.gpsd or settings.gpsd)
    except GpsdAddressError as exc:
        raise UserInputError(str(exc)) from exc
    return GpsdFeed(host, port, jam_limit=settings.gnss_jam_limit)


def open_serial_feed(port: str, baud: int) -> FixFeed:
    """The receiver on `port`; a port that is not there is a mistake to report, not to wait for
    (systemd restarts the unit if the receiver enumerates late)."""
    if not Path(port).exists():
        msg = (
            f"serial port {port} does not exist: plug the receiver in or give its device "
            "(e.g. --nmea-serial /dev/ttyACM0, or ROADSWARM_EDGE_NMEA_SERIAL)"
        )
        raise UserInputError(msg)
    return SerialNmeaFeed(port, baud=baud)


def open_source(sources: Sources, feed: FixFeed, settings: EdgeSettings) -> FrameSource:
    """A video file, an image folder, or the camera (the default: ROADSWARM_EDGE_CAMERA)."""
    if sum(x is not None for x in (sources.camera, sources.video, sources.images)) > 1:
        msg = "give one frame source: --camera, --video or --images"
        raise UserInputError(msg)
    if sources.video is not None:
        start = _start(sources, feed)
        return VideoFileSource(sources.video, start, realtime=sources.realtime)
    if sources.images is not None:
        begins = _start(sources, feed) if sources.image_rate_hz else None
        return ImageFolderSource(sources.images, rate_hz=sources.image_rate_hz, start=begins)
    device = sources.camera or settings.camera
    return CameraSource(
        int(device) if device.isdigit() else device, clock_offset_s=settings.camera_clock_offset_s
    )


def _start(sources: Sources, feed: FixFeed) -> datetime:
    """The recording's first frame on the GNSS clock: given, or the first fix (as `edge process`)."""
    if sources.start:
        return parse_start(sources.start)
    first = feed.first_fix(FIRST_FIX_WAIT_S)
    if first is None:
        msg = "no GNSS fix to start the recording at: give --start or check the receiver"
        raise UserInputError(msg)
    return first.time


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM (systemd stopping the unit) or SIGINT (Ctrl-C)."""
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def upload_client(api_url: str, identity_dir: Path, settings: EdgeSettings) -> IngestClient:
    policy = RetryPolicy(
        attempts=settings.upload_attempts,
        base_s=settings.upload_backoff_base_s,
        cap_s=settings.upload_backoff_cap_s,
    )
    return IngestClient(api_url, load_identity(identity_dir), policy=policy)


def summary(report: RunReport) -> str:
    """One paragraph for the driver."""
    capture = report.capture
    captured = (
        "capture did not start"
        if capture is None
        else f"{capture.frames} frames over {capture.travelled_m / 1000:.2f} km, "
        f"{capture.candidates_queued} candidates queued"
    )
    text = (
        f"{captured}; {report.privacy.keyframes} keyframes anonymized into the spool; "
        f"raw queue: {report.raw.get('queued', 0)} waiting; stopped: {report.stopped_because} "
        f"after {report.seconds:.0f} s"
    )
    if report.upload is not None:
        text += f"; {report.upload.frames_committed} frames committed"
        if report.upload.retry_later:
            text += f" (server unreachable, will retry: {report.upload.retry_later[-1]})"
    if report.evictions:
        text += f"; {report.evictions} evicted to stay within the quota"
    return text


@click.command("run")
@click.option(
    "--camera", default=None, help="Camera index or device (default ROADSWARM_EDGE_CAMERA)."
)
@click.option(
    "--video", type=click.Path(path_type=Path), default=None, help="A recording as the camera."
)
@click.option("--images", type=click.Path(path_type=Path), default=None, help="A folder of images.")
@click.option(
    "--image-rate-hz", type=click.FloatRange(min=0.01), default=None, help="Time images by order."
)
@click.option(
    "--start",
    default=None,
    help="UTC time of the recording's first frame (ISO 8601); default: first fix.",
)
@click.option("--realtime", is_flag=True, help="Play a --video no faster than it was recorded.")
@click.option("--gpsd", default=None, help="HOST:PORT of gpsd (default ROADSWARM_EDGE_GPSD).")
@click.option(
    "--nmea-serial",
    default=None,
    help="Serial port of an NMEA receiver, read without gpsd (default ROADSWARM_EDGE_NMEA_SERIAL).",
)
@click.option(
    "--baud",
    type=click.IntRange(300, 921600),
    default=None,
    help="Baud rate of --nmea-serial (default ROADSWARM_EDGE_NMEA_BAUD, 9600).",
)
@click.option(
    "--nmea", type=click.Path(path_type=Path), default=None, help="An NMEA log replayed as live."
)
@click.option(
    "--gpx", type=click.Path(path_type=Path), default=None, help="A GPX track replayed as live."
)
@click.option(
    "--calibration", type=click.Path(path_type=Path), default=None, help="Camera calibration JSON."
)
@click.option(
    "--privacy-zones",
    type=click.Path(path_type=Path),
    default=None,
    help="GeoJSON polygons to leave out.",
)
@click.option("--spacing-m", type=click.FloatRange(0.5, 100), default=4.0, show_default=True)
@click.option("--trim-m", type=click.FloatRange(0, 10_000), default=200.0, show_default=True)
@click.option("--spool", "spool_dir", type=click.Path(path_type=Path), default=None)
@click.option("--identity-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--api",
    "api_url",
    default=None,
    help="Upload to this ingest API (default ROADSWARM_EDGE_API_URL; '' for none).",
)
@click.option(
    "--quota-mb",
    type=click.FloatRange(min=0),
    default=None,
    help="Spool size limit (ROADSWARM_EDGE_QUOTA_MB).",
)
@click.option(
    "--allow-evict/--no-allow-evict",
    default=None,
    help="When full, evict the oldest uncommitted data (ROADSWARM_EDGE_ALLOW_EVICT).",
)
@click.option(
    "--duration-s",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop capturing after this long.",
)
@click.option(
    "--until-drained",
    is_flag=True,
    help="After capture, anonymize (and upload) what is queued, then exit.",
)
@json_option
def run_command(**given: Any) -> None:
    """Capture live: keyframe candidates into an encrypted raw queue, anonymized as fast as the
    device allows, uploaded when an API is set. Safe to kill at any instant."""
    settings = EdgeSettings()
    sources = Sources(**{k: given.pop(k) for k in Sources.__dataclass_fields__})
    as_json = given.pop("as_json")
    identity_dir = given["identity_dir"] or settings.identity_dir
    options = run_options(given, settings)
    # One keyframe per usable core at once, as `edge process` does (see `edge.drain`).
    anonymizer = Anonymizer.load(PrivacySettings(), ModelSettings(), parallel=True)
    api_url = settings.api_url if given["api_url"] is None else given["api_url"]
    client = upload_client(api_url, identity_dir, settings) if api_url else None
    feed = open_feed(sources, settings)
    try:
        with open_source(sources, feed, settings) as source, stop_on_signals() as stop:
            inputs = LiveInputs(
                given["spool_dir"] or settings.spool_dir,
                source,
                feed,
                anonymizer,
                RawCipher(raw_key(identity_dir)),
                client,
            )
            report = run_live(inputs, options, stop)
    finally:
        feed.close()
        if client is not None:
            client.close()
    emit(report.to_json(), as_json=as_json, text=summary(report))


def run_options(given: dict[str, Any], settings: EdgeSettings) -> RunOptions:
    """Keyframe rules, quota and stop conditions from the options and settings."""
    zones = PrivacyZones.read(given["privacy_zones"]) if given["privacy_zones"] else None
    capture = CaptureOptions(
        rules=KeyframeRules(spacing_m=given["spacing_m"], trim_m=given["trim_m"]),
        zones=zones,
        horizon=read_horizon(given["calibration"]),
        camera=read_camera(given["calibration"]),
        max_pending_frames=settings.max_pending_frames,
        gnss_stall_s=settings.gnss_stall_s,
    )
    quota_mb = settings.quota_mb if given["quota_mb"] is None else given["quota_mb"]
    evict = settings.allow_evict if given["allow_evict"] is None else given["allow_evict"]
    return RunOptions(
        capture=capture,
        quota=Quota.from_mb(quota_mb, allow_evict=evict),
        duration_s=given["duration_s"],
        until_drained=given["until_drained"],
        upload_interval_s=settings.upload_interval_s,
    )
