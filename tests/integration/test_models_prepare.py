"""`models prepare`: device variants of the real plate model, measured before they are offered."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from models.detectors import load_detector
from models.fetch import WeightsMissingError, ensure_weights, file_sha256
from models.prepare import MANIFEST, VariantReport, agreement, best_variant, prepare_model
from models.registry import ModelSpec, get_model
from models.settings import ModelSettings

REPO = Path(__file__).resolve().parents[2]
PLATES = REPO.parent / "shared" / "data" / "privacy" / "plates" / "openalpr-eu"


@pytest.fixture(scope="module")
def plate_spec() -> ModelSpec:
    """The plate model, whose weights `make test` fetched."""
    spec = get_model("platedet-yolov8s-seg")
    try:
        ensure_weights(spec)
    except WeightsMissingError as exc:
        if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
            raise
        pytest.skip(str(exc))
    return spec


def street_like_images(count: int) -> list[NDArray[np.uint8]]:
    """Smooth random scenes: enough to calibrate activations, no plates to find."""
    rng = np.random.default_rng(3)
    return [
        np.asarray(
            cv2.GaussianBlur(rng.integers(0, 255, (320, 480, 3), dtype=np.uint8), (0, 0), 3),
            np.uint8,
        )
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def prepared(
    plate_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelSettings, list[VariantReport]]:
    """Variants made in a private models folder that links to the fetched weights."""
    settings = ModelSettings(models_dir=tmp_path_factory.mktemp("models"))
    target = settings.models_dir / plate_spec.name
    target.mkdir(parents=True)
    source = ensure_weights(plate_spec)
    (target / source.name).symlink_to(source)
    images = street_like_images(8)
    if PLATES.is_dir():  # real cars make the agreement check meaningful
        images = [
            np.asarray(cv2.imread(str(p)), np.uint8) for p in sorted(PLATES.glob("*.jpg"))[:24]
        ]
    return settings, prepare_model(plate_spec, images, settings)


def test_variants_are_written_measured_and_recorded(
    prepared: tuple[ModelSettings, list[VariantReport]], plate_spec: ModelSpec
) -> None:
    """fp32 and int8 variants exist with the recorded sha256, speeds and agreement."""
    settings, reports = prepared
    assert [r.variant for r in reports] == ["fp32", "int8"]
    for report in reports:
        assert file_sha256(Path(report.path)) == report.sha256
        assert report.ms_per_image > 0 and report.reference_ms_per_image > 0
        assert 0.0 <= report.agreement <= 1.0
        assert report.source_sha256 == plate_spec.sha256
    manifest = json.loads((settings.models_dir / plate_spec.name / MANIFEST).read_text())
    assert manifest == [asdict(r) for r in reports]


@pytest.mark.skipif(not PLATES.is_dir(), reason="shared plate photos not present")
def test_int8_finds_what_the_original_finds(
    prepared: tuple[ModelSettings, list[VariantReport]],
) -> None:
    """On real cars the int8 variant (head kept in float) agrees with the published model."""
    _, reports = prepared
    int8 = next(r for r in reports if r.variant == "int8")
    assert int8.agreement >= 0.95, int8


def test_fp32_conversion_keeps_the_outputs(
    prepared: tuple[ModelSettings, list[VariantReport]], plate_spec: ModelSpec
) -> None:
    """The float32 variant detects the same boxes as the float16 original on the same image."""
    _, reports = prepared
    fp32 = next(r for r in reports if r.variant == "fp32")
    weights = ensure_weights(plate_spec)
    image = street_like_images(1)[0]
    cv2.rectangle(image, (100, 150), (300, 200), (240, 240, 240), -1)
    original = load_detector(plate_spec, weights, ["CPUExecutionProvider"]).detect(image, 0.01)
    converted = load_detector(
        plate_spec, weights, ["CPUExecutionProvider"], variant=Path(fp32.path)
    ).detect(image, 0.01)
    assert agreement([original.boxes], [converted.boxes]) >= 0.9


def test_best_variant_is_the_fastest_intact_offered_one(
    prepared: tuple[ModelSettings, list[VariantReport]], plate_spec: ModelSpec, tmp_path: Path
) -> None:
    """Only offered variants of these very weights, with intact files, are used; fastest first."""
    settings, reports = prepared
    fp32, int8 = reports
    fast, slow = (
        replace(int8, offered=True, ms_per_image=1.0),
        replace(fp32, offered=True, ms_per_image=2.0),
    )
    manifest = settings.models_dir / plate_spec.name / MANIFEST
    manifest.write_text(json.dumps([asdict(slow), asdict(fast)]))
    assert best_variant(plate_spec, settings) == Path(int8.path)
    manifest.write_text(json.dumps([asdict(slow), asdict(replace(fast, sha256="0" * 64))]))
    assert best_variant(plate_spec, settings) == Path(fp32.path)  # a damaged file is skipped
    manifest.write_text(json.dumps([asdict(replace(fast, source_sha256="f" * 64))]))
    assert best_variant(plate_spec, settings) is None  # made from other weights
    manifest.write_text(json.dumps([asdict(replace(fast, offered=False))]))
    assert best_variant(plate_spec, settings) is None
    manifest.write_text("not json")
    assert best_variant(plate_spec, settings) is None
