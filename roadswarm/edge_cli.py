"""`roadswarm edge ...`: the device app's commands."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import cv2
from pydantic import ValidationError
from tqdm import tqdm

from edge.anonymize import Anonymized, Anonymizer, horizon_row
from edge.client import IngestClient, RetryPolicy
from edge.gnss.gpx import read_gpx
from edge.gnss.log import GnssLog
from edge.gnss.nmea import read_nmea
from edge.identity import create_identity, load_identity
from edge.keyframes import KeyframeRules, PrivacyZones
from edge.livespool import LiveSpool
from edge.process import Recording, open_video, process_recording
from edge.settings import EdgeSettings, PrivacySettings
from edge.spool import Spool
from edge.status import device_status, status_text
from edge.sync import estimate_offset as find_offset
from edge.sync import motion_profile
from edge.track import Track
from edge.upload import upload_spool
from ingest.protocol import CameraCalibration
from models.settings import ModelSettings
from roadswarm.errors import RoadswarmError, ServiceError, UserInputError
from roadswarm.files import ensure_writable_folder, write_atomically
from roadswarm.lazy_group import LazyGroup
from roadswarm.output import emit, json_option

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
JPEG_QUALITY = 90


class ServerUnavailableError(ServiceError):
    """The ingest API could not be reached; everything stays spooled for the next run."""


class UnusableImagesError(RoadswarmError):
    """Some images could not be read or checked; the others were written."""

    exit_code = 5


def list_images(source: Path) -> list[Path]:
    """The image itself, or the images directly inside a folder, in name order."""
    if source.is_file():
        return [source]
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    msg = f"{source} does not exist: pass an image file or a folder of .jpg/.png images"
    raise UserInputError(msg)


def read_horizon(calibration: Path | None) -> float | None:
    """The horizon row from a calibration JSON (`roadswarm sim drive` writes one), if given."""
    if calibration is None:
        return None
    try:
        data = json.loads(calibration.read_bytes())
        horizon = horizon_row(data["camera_matrix"], float(data["pitch_deg"]))
        if not math.isfinite(horizon):
            msg = f"the horizon row comes out as {horizon}"
            raise ValueError(msg)
        return horizon
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        msg = f"cannot use {calibration} as a calibration ({exc}): it needs camera_matrix and pitch_deg"
        raise UserInputError(msg) from exc


def read_camera(calibration: Path | None) -> CameraCalibration | None:
    """The camera a calibration JSON describes, as batches carry it to the server (if given)."""
    if calibration is None:
        return None
    try:
        # Bytes, so that the JSON parser reports text that is not UTF-8 like any other flaw.
        return CameraCalibration.model_validate_json(calibration.read_bytes())
    except (OSError, ValidationError) as exc:
        problem = _problems(exc) if isinstance(exc, ValidationError) else str(exc)
        msg = (
            f"cannot use {calibration} as a calibration ({problem}): it needs width_px, height_px, "
            "camera_matrix, dist_coeffs, mount_height_m, pitch_deg and roll_deg"
        )
        raise UserInputError(msg) from exc


def _problems(error: ValidationError) -> str:
    """The first few problems of a validation error, on one line."""
    found = error.errors()
    shown = [f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in found[:3]]
    return "; ".join(shown) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")


def detection_rows(name: str, result: Anonymized) -> list[dict[str, Any]]:
    """The JSON rows of one image: class, [x, y, w, h] in its pixels, score."""
    rows = []
    for kind, found in (("face", result.faces), ("plate", result.plates)):
        for (x1, y1, x2, y2), score in zip(
            found.boxes.tolist(), found.scores.tolist(), strict=True
        ):
            box = [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)]
            rows.append({"image": name, "class": kind, "box": box, "score": round(score, 4)})
    return rows


@click.group("edge", cls=LazyGroup, lazy={"run": "roadswarm.edge_run_cli:run_command"})
def edge_group() -> None:
    """The device app: capture, anonymize, spool and upload keyframes."""


@edge_group.command("anonymize")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for blurred images.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    default=None,
    help="Camera calibration JSON: look for small targets around its horizon only.",
)
@click.option(
    "--blur",
    type=click.Choice(["gaussian", "pixelate"]),
    default=None,
    help="How to hide what is found.",
)
@click.option(
    "--provider", default=None, help="Execution provider: cpu, cuda, tensorrt, openvino, coreml."
)
@json_option
def anonymize_command(
    source: Path,
    out_dir: Path,
    calibration: Path | None,
    blur: str | None,
    provider: str | None,
    as_json: bool,
) -> None:
    """Blur faces and licence plates in an image or a folder of images."""
    images = list_images(source)
    horizon = read_horizon(calibration)
    ensure_writable_folder(out_dir)
    overrides: dict[str, Any] = {k: v for k, v in {"blur": blur, "provider": provider}.items() if v}
    anonymizer = Anonymizer.load(PrivacySettings(**overrides), ModelSettings())
    rows: list[dict[str, Any]] = []
    unusable: dict[str, str] = {}
    for path in tqdm(images, desc="images", disable=None):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        result = anonymizer.anonymize(image, horizon=horizon) if image is not None else None
        if not isinstance(result, Anonymized):
            unusable[path.name] = result.reason if result else "not a readable JPEG or PNG image"
            continue
        suffix = ".png" if path.suffix.lower() == ".png" else ".jpg"
        params = [] if suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        _, encoded = cv2.imencode(suffix, result.image, params)
        write_atomically(out_dir / (path.stem + suffix), encoded.tobytes())
        rows.extend(detection_rows(path.name, result))
    report = {"detections": rows, "unusable": unusable, "models": anonymizer.model_versions}
    write_atomically(out_dir / "report.json", json.dumps(report, indent=2).encode())
    text = (
        f"{len(images) - len(unusable)} images blurred into {out_dir}, {len(rows)} faces and plates"
    )
    emit(rows, as_json=as_json, text=text)
    if unusable:
        names = ", ".join(f"{name} ({why})" for name, why in sorted(unusable.items())[:5])
        msg = f"{len(unusable)} image(s) were not written because they could not be checked: {names}; see {out_dir}/report.json"
        raise UnusableImagesError(msg)


class FrameProgress:
    """A progress bar over a video's frames on stderr, shown only on a terminal (never in logs
    or JSON output); its total is known once the video is open."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._bar: tqdm[Any] | None = None

    def __enter__(self) -> FrameProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, done: int, total: int) -> None:
        """Move the bar to `done` of `total` frames."""
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.name, unit="frame", disable=None)
        self._bar.update(done - self._bar.n)


def read_gnss_log(gpx: Path | None, nmea: Path | None) -> GnssLog:
    """Exactly one GNSS log, read with its bad records kept."""
    if gpx is not None and nmea is None:
        return read_gpx(gpx)
    if nmea is not None and gpx is None:
        return read_nmea(nmea)
    msg = "give exactly one GNSS log: --gpx FILE or --nmea FILE"
    raise UserInputError(msg)


@edge_group.command("process")
@click.option("--video", type=click.Path(path_type=Path), required=True, help="The recorded drive.")
@click.option("--gpx", type=click.Path(path_type=Path), default=None, help="GNSS track as GPX.")
@click.option(
    "--nmea", type=click.Path(path_type=Path), default=None, help="GNSS log as NMEA 0183."
)
@click.option(
    "--calibration", type=click.Path(path_type=Path), default=None, help="Camera calibration JSON."
)
@click.option(
    "--video-start",
    default=None,
    help="UTC time of the first frame (ISO 8601); default: the first fix.",
)
@click.option(
    "--privacy-zones",
    type=click.Path(path_type=Path),
    default=None,
    help="GeoJSON polygons to leave out.",
)
@click.option(
    "--estimate-offset",
    is_flag=True,
    help="Line the video up with the GNSS speed (within 30 s of the given or assumed start).",
)
@click.option("--spacing-m", type=click.FloatRange(0.5, 100), default=4.0, show_default=True)
@click.option(
    "--trim-m",
    type=click.FloatRange(0, 10_000),
    default=200.0,
    show_default=True,
    help="Leave out this much at each end of the trip (home protection).",
)
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The device's spool (default: ROADSWARM_EDGE_SPOOL_DIR or ~/.local/share/roadswarm/spool).",
)
@json_option
def process_command(
    video: Path,
    gpx: Path | None,
    nmea: Path | None,
    calibration: Path | None,
    video_start: str | None,
    privacy_zones: Path | None,
    estimate_offset: bool,
    spacing_m: float,
    trim_m: float,
    spool_dir: Path | None,
    as_json: bool,
) -> None:
    """Turn a recorded drive into anonymized, geotagged keyframes (one per --spacing-m metres)."""
    log = read_gnss_log(gpx, nmea)
    if not log.fixes:
        msg = (
            f"the GNSS log has no usable fix ({len(log.bad)} bad records): check the receiver's log"
        )
        raise UserInputError(msg)
    start = parse_start(video_start) if video_start else log.fixes[0].time
    offset = None
    if estimate_offset:
        times, energy = motion_profile(video)
        offset = find_offset(Track(log.fixes), start.timestamp(), times, energy)
        start += timedelta(seconds=offset.seconds)
    zones = PrivacyZones.read(privacy_zones) if privacy_zones else None
    # Every input is checked before the models load and the spool is opened.
    horizon, camera = read_horizon(calibration), read_camera(calibration)
    open_video(video)[0].release()
    anonymizer = Anonymizer.load(PrivacySettings(), ModelSettings(), parallel=True)
    folder = spool_dir or EdgeSettings().spool_dir
    with Spool(folder) as spool, FrameProgress(video.name) as progress:
        report = process_recording(
            Recording(video, start),
            log,
            anonymizer,
            spool,
            rules=KeyframeRules(spacing_m=spacing_m, trim_m=trim_m),
            zones=zones,
            horizon=horizon,
            camera=camera,
            progress=progress.update,
        )
    report.video_offset_s = None if offset is None else offset.seconds
    text = (
        f"{report.keyframes} new keyframes from {report.frames} frames over "
        f"{report.travelled_m / 1000:.2f} km in {report.seconds:.1f} s, spooled in {folder}"
    )
    emit(report.to_json(), as_json=as_json, text=text)


@edge_group.command("status")
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The device's spool.",
)
@json_option
def status_command(spool_dir: Path | None, as_json: bool) -> None:
    """Keyframes spooled, uploaded and committed, raw candidates waiting, km mapped today and
    this epoch, evictions, whether capture is paused, and the last error."""
    folder = spool_dir or EdgeSettings().spool_dir
    # Only reads: it must not tidy files a running `edge run` is about to give a row.
    with LiveSpool(folder, first=False) as spool:
        status = device_status(spool)
    emit(status, as_json=as_json, text=status_text(status))


def parse_start(text: str) -> datetime:
    """An ISO 8601 instant with a timezone."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"--video-start {text!r} is not an ISO 8601 time: write it like 2026-06-01T06:00:00+00:00"
        raise UserInputError(msg) from exc
    if when.tzinfo is None:
        msg = f"--video-start {text!r} has no timezone: add +00:00 (UTC) or the camera's offset"
        raise UserInputError(msg)
    return when


@edge_group.command("init")
@click.option(
    "--identity-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the key pair is kept (default: ROADSWARM_EDGE_IDENTITY_DIR).",
)
@click.option(
    "--register",
    "api_url",
    default=None,
    help="Register the new key with this ingest API (e.g. http://127.0.0.1:8100).",
)
@click.option("--enrollment-token", default=None, help="Token a closed deployment requires.")
@json_option
def init_command(
    identity_dir: Path | None, api_url: str | None, enrollment_token: str | None, as_json: bool
) -> None:
    """Create this device's ed25519 identity (private key mode 600) and optionally register it."""
    folder = identity_dir or EdgeSettings().identity_dir
    identity = create_identity(folder)
    registered = None
    if api_url:
        client = IngestClient(api_url, identity)
        try:
            registered = client.register(enrollment_token)
        finally:
            client.close()
    result = {
        "device_id": identity.device_id,
        "public_key": identity.public_pem(),
        "identity_dir": str(folder),
        "registered_with": api_url if registered else None,
    }
    where = f"registered with {api_url}" if registered else "register it with --register URL"
    text = f"device {identity.device_id} created in {folder}; {where}"
    emit(result, as_json=as_json, text=text)


@edge_group.command("upload")
@click.option("--api", "api_url", default=None, help="Ingest API URL (or ROADSWARM_EDGE_API_URL).")
@click.option("--spool", "spool_dir", type=click.Path(path_type=Path), default=None)
@click.option("--identity-dir", type=click.Path(path_type=Path), default=None)
@json_option
def upload_command(
    api_url: str | None, spool_dir: Path | None, identity_dir: Path | None, as_json: bool
) -> None:
    """Seal ready keyframes into signed batches, upload them and commit; resumes after any crash."""
    settings = EdgeSettings()
    url = api_url or settings.api_url
    if not url:
        msg = "no ingest API: pass --api URL or set ROADSWARM_EDGE_API_URL"
        raise UserInputError(msg)
    identity = load_identity(identity_dir or settings.identity_dir)
    policy = RetryPolicy(
        attempts=settings.upload_attempts,
        base_s=settings.upload_backoff_base_s,
        cap_s=settings.upload_backoff_cap_s,
    )
    client = IngestClient(url, identity, policy=policy)
    try:
        with Spool(spool_dir or settings.spool_dir) as spool:
            report = upload_spool(spool, client)
    finally:
        client.close()
    text = (
        f"{report.batches_committed} batches committed ({report.frames_committed} frames, "
        f"{report.frames_uploaded} uploaded now) in {report.seconds:.1f} s"
    )
    if report.retry_later:
        text += f"; server unreachable, will retry: {report.retry_later[-1]}"
    emit(report.to_json(), as_json=as_json, text=text)
    if report.retry_later:
        raise ServerUnavailableError(report.retry_later[-1])
