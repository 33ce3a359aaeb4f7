"""Choosing onnxruntime execution providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from models import scan
from models.registry import ModelSpec
from models.runtime import (
    PROVIDER_ALIASES,
    ProviderUnavailableError,
    SessionsByShape,
    choose_providers,
)
from models.settings import DetectionSettings, ModelSettings


def test_default_is_the_cpu_even_where_an_accelerator_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Accelerators are used only when asked for: with one session for every view shape, CUDA ran
    whole frames slower than the CPU."""
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    assert choose_providers() == ["CPUExecutionProvider"]
    assert choose_providers("tensorrt") == ["TensorrtExecutionProvider", "CPUExecutionProvider"]


def test_requested_provider_is_used_with_cpu_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short name picks its provider; the CPU stays as fallback for nodes the device lacks."""
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert choose_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("CPUExecutionProvider") == ["CPUExecutionProvider"]


def test_missing_provider_is_a_clear_error() -> None:
    """Asking for a provider this onnxruntime lacks names what is available and what to install."""
    missing = next(p for p in PROVIDER_ALIASES.values() if p not in ort.get_available_providers())
    with pytest.raises(
        ProviderUnavailableError, match=r"available: .*CPUExecutionProvider.*install"
    ):
        choose_providers(missing)


class _Sessions:
    """Stands in for onnxruntime sessions (none but the CPU's can be made here): counts them."""

    def __init__(self) -> None:
        self.made: list[object] = []

    def make(self) -> object:
        self.made.append(object())
        return self.made[-1]


def test_an_accelerator_gets_one_session_per_input_shape() -> None:
    """Each shape keeps the session that first saw it, the first shape the one made at load, and
    the least recently used beyond the limit is dropped."""
    sessions = _Sessions()
    first = sessions.make()
    by_shape = SessionsByShape(first, sessions.make, limit=2)
    overview, band, other = (1, 3, 384, 640), (1, 3, 448, 1920), (1, 3, 736, 1280)
    assert by_shape.get(overview) is first
    band_session = by_shape.get(band)
    assert band_session is not first
    assert [by_shape.get(overview), by_shape.get(band)] == [first, band_session]
    assert len(sessions.made) == 2
    by_shape.get(other)  # the overview, used least recently, is dropped
    assert by_shape.get(band) is band_session
    assert by_shape.get(overview) not in (first, band_session)
    assert len(sessions.made) == 4


def test_the_cpu_runs_every_shape_on_one_session() -> None:
    """The CPU provider plans nothing per shape, so one session (and its memory) serves all."""
    only = object()
    by_shape = SessionsByShape(only)
    assert by_shape.get((1, 3, 384, 640)) is only
    assert by_shape.get((1, 3, 448, 1920)) is only


def test_prepared_variants_are_loaded_only_on_the_cpu_they_were_measured_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`models prepare` times variants on the CPU; on CUDA the int8 plate model it prefers was
    slower than fp32, so an accelerator gets the published weights."""
    loaded: list[tuple[str, Path | None]] = []

    def load(spec: ModelSpec, weights: Path, providers: list[str], **kw: Any) -> str:
        loaded.append((providers[0], kw["variant"]))
        return spec.task

    monkeypatch.setattr(scan, "ensure_weights", lambda spec, settings: tmp_path / "w.onnx")
    monkeypatch.setattr(scan, "best_variant", lambda spec, settings: tmp_path / "int8.onnx")
    monkeypatch.setattr(scan, "load_detector", load)
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    models = ModelSettings(models_dir=tmp_path)
    scan.PrivacyScanner.load_detectors(DetectionSettings(provider="cuda"), models)
    scan.PrivacyScanner.load_detectors(DetectionSettings(), models)
    assert loaded == [
        ("CUDAExecutionProvider", None),
        ("CUDAExecutionProvider", None),
        ("CPUExecutionProvider", tmp_path / "int8.onnx"),
        ("CPUExecutionProvider", tmp_path / "int8.onnx"),
    ]
