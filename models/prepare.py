"""Device-ready variants of a model, each measured for speed and agreement before it is offered.

Variants: `fp32` (a float16 model converted: onnxruntime's CPU kernels are float32) and `int8`
(static QDQ, per-channel weights, calibrated on the user's images, with the detection head kept in
float). A variant is offered only if it finds what the original finds on held-out images and is
faster; the Anonymizer then loads the fastest offered one.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from models.boxes import iou_matrix
from models.detectors import Detector, load_detector, runtime_graph
from models.errors import ModelError
from models.fetch import ensure_weights, file_sha256
from models.registry import ModelSpec
from models.settings import ModelSettings

MIN_AGREEMENT = 0.97
MIN_SPEEDUP = 1.1
AGREEMENT_IOU = 0.5
CALIBRATION_LONG_SIDE = 640
MANIFEST = "prepared.json"


@dataclass(frozen=True)
class VariantReport:
    """One variant and what was measured on it."""

    model: str
    source_sha256: str
    variant: str
    path: str
    sha256: str
    ms_per_image: float
    reference_ms_per_image: float
    agreement: float
    offered: bool
    reason: str


def to_float32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every float16 tensor, constant and cast made float32."""
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT16:
            tensor.CopyFrom(
                numpy_helper.from_array(
                    numpy_helper.to_array(tensor).astype(np.float32), tensor.name
                )
            )
    for info in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in model.graph.node:
        for attribute in node.attribute:
            if (
                node.op_type == "Cast"
                and attribute.name == "to"
                and attribute.i == TensorProto.FLOAT16
            ):
                attribute.i = TensorProto.FLOAT
            if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT16:
                attribute.t.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float32))
                )
    return model


def _model_input(image: NDArray[np.uint8], spec: ModelSpec) -> NDArray[np.float32]:
    """An image as the model sees it, shrunk to the calibration size and cut to its stride."""
    height, width = image.shape[:2]
    ratio = min(1.0, CALIBRATION_LONG_SIDE / max(height, width))
    stride = spec.input.stride
    size = (
        max(stride, int(width * ratio) // stride * stride),
        max(stride, int(height * ratio) // stride * stride),
    )
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    pixels = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB) if spec.input.colour == "RGB" else resized
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(
        spec.input.scale
    )


class _Calibration(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, images: list[NDArray[np.uint8]], spec: ModelSpec) -> None:
        self._inputs: Iterator[NDArray[np.float32]] = (_model_input(i, spec) for i in images)
        self._name = spec.outputs.input

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        tensor = next(self._inputs, None)
        return None if tensor is None else {self._name: tensor}


def quantize_int8(fp32: Path, out: Path, images: list[NDArray[np.uint8]], spec: ModelSpec) -> None:
    """Static int8 quantization calibrated on `images`, the head kept in float."""
    model = onnx.load(str(fp32))
    keep = [n.name for n in model.graph.node if n.name.startswith(spec.prepare.int8_keep_float)]
    quantize_static(
        str(fp32),
        str(out),
        _Calibration(images, spec),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        nodes_to_exclude=keep,
    )


def _compare(
    reference: Detector, candidate: Detector, images: list[NDArray[np.uint8]], threshold: float
) -> tuple[float, float, list[NDArray[np.float32]], list[NDArray[np.float32]]]:
    """Median milliseconds per image of the reference and the candidate, and what each found.

    Timed image by image in alternating order, so that other load on the machine (a shared CI
    host, a busy device) weighs on both alike instead of on whichever happened to run second.
    """
    for detector in (reference, candidate):
        detector.detect(images[0], threshold)  # warm-up: first runs allocate and plan
    runs: dict[int, tuple[list[float], list[NDArray[np.float32]]]] = {
        id(reference): ([], []),
        id(candidate): ([], []),
    }
    for k, image in enumerate(images):
        for detector in (reference, candidate) if k % 2 == 0 else (candidate, reference):
            started = time.perf_counter()
            boxes = detector.detect(image, threshold).boxes
            runs[id(detector)][0].append((time.perf_counter() - started) * 1000)
            runs[id(detector)][1].append(boxes)
    (ref_ms, ref_found), (cand_ms, cand_found) = runs[id(reference)], runs[id(candidate)]
    return float(np.median(ref_ms)), float(np.median(cand_ms)), ref_found, cand_found


def agreement(reference: list[NDArray[np.float32]], candidate: list[NDArray[np.float32]]) -> float:
    """Share of the reference's detections the candidate also finds (IoU >= 0.5); 1 if none."""
    total = sum(len(r) for r in reference)
    if total == 0:
        return 1.0
    hits = sum(
        int((iou_matrix(r, c).max(axis=1) >= AGREEMENT_IOU).sum())
        for r, c in zip(reference, candidate, strict=True)
        if len(r) and len(c)
    )
    return hits / total


def read_images(folder: Path, limit: int = 64) -> list[NDArray[np.uint8]]:
    """Up to `limit` readable .jpg/.png images from `folder`, in name order."""
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        if folder.is_dir()
        else []
    )
    images = [img for img in (cv2.imread(str(p)) for p in paths[:limit]) if img is not None]
    if len(images) < 4:
        msg = f"{folder} holds {len(images)} readable images; calibration needs at least 4 frames like the device will see"
        raise ModelError(msg)
    return [np.asarray(i, np.uint8) for i in images]


def prepare_model(
    spec: ModelSpec,
    images: list[NDArray[np.uint8]],
    settings: ModelSettings,
    *,
    threshold: float = 0.25,
) -> list[VariantReport]:
    """Make, measure and record the variants of one model; half the images calibrate, half judge."""
    weights = ensure_weights(spec, settings)
    out_dir = settings.models_dir / spec.name / "variants"
    out_dir.mkdir(parents=True, exist_ok=True)
    calibrate, judge = images[::2], images[1::2]
    reference = load_detector(spec, weights, ["CPUExecutionProvider"])
    reports = []
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        onnx.save(to_float32(onnx.load_from_string(runtime_graph(spec, weights))), str(fp32))
        candidates = {"fp32": fp32}
        if spec.prepare.int8_keep_float:
            quantize_int8(fp32, Path(scratch) / "int8.onnx", calibrate, spec)
            candidates["int8"] = Path(scratch) / "int8.onnx"
        for variant, path in candidates.items():
            sha = file_sha256(path)
            final = out_dir / f"{variant}-{sha[:16]}.onnx"
            path.replace(final)
            detector = load_detector(spec, weights, ["CPUExecutionProvider"], variant=final)
            reference_ms, ms, reference_found, found = _compare(
                reference, detector, judge, threshold
            )
            agreed = agreement(reference_found, found)
            offered = agreed >= MIN_AGREEMENT and reference_ms / ms >= MIN_SPEEDUP
            reason = (
                "offered"
                if offered
                else f"agreement {agreed:.3f} (needs {MIN_AGREEMENT}), speed-up {reference_ms / ms:.2f}x (needs {MIN_SPEEDUP}x)"
            )
            reports.append(
                VariantReport(
                    spec.name,
                    spec.sha256,
                    variant,
                    str(final),
                    sha,
                    round(ms, 1),
                    round(reference_ms, 1),
                    round(agreed, 4),
                    offered,
                    reason,
                )
            )
    _write_manifest(settings.models_dir / spec.name / MANIFEST, reports)
    return reports


def _write_manifest(path: Path, reports: list[VariantReport]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    tmp.replace(path)


def best_variant(spec: ModelSpec, settings: ModelSettings) -> Path | None:
    """The fastest offered variant whose file is intact, or None to use the original."""
    manifest = settings.models_dir / spec.name / MANIFEST
    try:
        reports = [VariantReport(**r) for r in json.loads(manifest.read_text())]
    except (OSError, ValueError, TypeError):
        return None
    offered = (r for r in reports if r.offered and r.source_sha256 == spec.sha256)
    for report in sorted(offered, key=lambda r: r.ms_per_image):
        path = Path(report.path)
        if path.is_file() and file_sha256(path) == report.sha256:
            return path
    return None
