"""Face and plate detectors behind one interface, one class per output family.

A detector takes a BGR image (any size) and returns boxes in that image's pixels. How the image is
cut into views and scaled is the caller's choice (see `edge.anonymize`); a detector only knows how to
feed its model and decode what comes out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from models.boxes import Detections, non_max_suppression
from models.errors import ModelError
from models.graph import cut_at, make_dynamic, strip_initializer_inputs
from models.registry import ModelSpec
from models.runtime import SessionsByShape, sessions_for

U8Image = NDArray[np.uint8]
NMS_IOU = 0.4
LETTERBOX_GREY = 114


class Detector(ABC):
    """Finds one kind of object (faces or plates) in an image."""

    def __init__(
        self,
        spec: ModelSpec,
        session: ort.InferenceSession | SessionsByShape,
        variant: str = "",
    ) -> None:
        self.spec = spec
        self.sessions = (
            session if isinstance(session, SessionsByShape) else SessionsByShape(session)
        )
        self.session = self.sessions.first
        self.variant = variant  # "" for the published model, else "+<variant file name>"
        # The session's own input type decides: a prepared variant may be float32 where the
        # published model is float16.
        input_type = self.session.get_inputs()[0].type if self.session is not None else ""
        half = input_type == "tensor(float16)" or (not input_type and spec.input.dtype == "float16")
        self.dtype = np.float16 if half else np.float32

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def provider(self) -> str:
        return str(self.session.get_providers()[0])

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(width, height) the model insists on, or None when it takes any multiple of its stride."""
        return None

    @abstractmethod
    def detect(self, image: U8Image, threshold: float) -> Detections:
        """Boxes scoring at least `threshold`, in `image`'s pixels."""

    def _pad_to_stride(self, image: U8Image) -> U8Image:
        """Pad right and bottom to a multiple of the stride: padding, unlike stretching, keeps
        boxes in the image's own pixels."""
        height, width = image.shape[:2]
        stride = self.spec.input.stride
        pad_h, pad_w = -height % stride, -width % stride
        if not pad_h and not pad_w:
            return image
        padded = cv2.copyMakeBorder(
            image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(LETTERBOX_GREY,) * 3
        )
        return np.asarray(padded, np.uint8)

    def _run(
        self, outputs: Sequence[str | None], tensor: NDArray[np.floating]
    ) -> list[NDArray[np.floating]]:
        session = self.sessions.get(tensor.shape)
        found: list[NDArray[np.floating]] = session.run(
            list(outputs), {self.spec.outputs.input: tensor}
        )
        return found

    def _tensor(self, image: U8Image) -> NDArray[np.floating]:
        pixels = (
            cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if self.spec.input.colour == "RGB" else image
        )
        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)
        if self.spec.input.scale != 1.0:
            chw *= np.float32(self.spec.input.scale)
        return chw.astype(self.dtype, copy=False)


class CenterFaceDetector(Detector):
    """CenterFace-style heads: a heatmap of centres, log box sizes and sub-cell offsets, stride 4."""

    STRIDE = 4

    def detect(self, image: U8Image, threshold: float) -> Detections:
        height, width = image.shape[:2]
        padded = self._pad_to_stride(image)
        names = self.spec.outputs
        heatmap, scale, offset = self._run(
            [names.heatmap, names.scale, names.offset], self._tensor(padded)
        )
        found = _decode_centerface(heatmap[0, 0], scale[0], offset[0], threshold, self.STRIDE)
        return non_max_suppression(found.clipped(width, height), NMS_IOU)


def _decode_centerface(
    heatmap: NDArray[np.float32],
    scale: NDArray[np.float32],
    offset: NDArray[np.float32],
    threshold: float,
    stride: int,
) -> Detections:
    rows, cols = np.nonzero(heatmap > threshold)
    if not len(rows):
        return Detections.empty()
    box_h = np.exp(scale[0, rows, cols]) * stride
    box_w = np.exp(scale[1, rows, cols]) * stride
    centre_y = (rows + offset[0, rows, cols] + 0.5) * stride
    centre_x = (cols + offset[1, rows, cols] + 0.5) * stride
    boxes = np.stack(
        [centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2], 1
    )
    return Detections(boxes.astype(np.float32), heatmap[rows, cols].astype(np.float32))


class YoloDetector(Detector):
    """YOLOv8-style models. With `heads` in the registry the graph is cut before its box decoding
    and any input size works; otherwise the model's fixed size is letterboxed."""

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        return None if self.spec.outputs.heads else self.spec.input.default_size

    def detect(self, image: U8Image, threshold: float) -> Detections:
        height, width = image.shape[:2]
        found = (
            self._from_heads(image, threshold)
            if self.spec.outputs.heads
            else self._letterboxed(image, threshold)
        )
        return non_max_suppression(found.clipped(width, height), NMS_IOU)

    def _from_heads(self, image: U8Image, threshold: float) -> Detections:
        names = self.spec.outputs
        heads = self._run(list(names.heads), self._tensor(self._pad_to_stride(image)))
        return Detections.concat(
            [
                _decode_yolo_head(np.asarray(head[0], np.float32), stride, names.reg_max, threshold)
                for head, stride in zip(heads, names.strides, strict=True)
            ]
        )

    def _letterboxed(self, image: U8Image, threshold: float) -> Detections:
        height, width = image.shape[:2]
        size_w, size_h = self.spec.input.default_size
        ratio = min(size_w / width, size_h / height)
        interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(
            image, (round(width * ratio), round(height * ratio)), interpolation=interpolation
        )
        canvas = np.full((size_h, size_w, 3), LETTERBOX_GREY, np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized  # top-left: no offsets to undo
        names = self.spec.outputs
        (predictions,) = self._run([names.predictions], self._tensor(canvas))
        found = _decode_yolo(
            np.asarray(predictions[0], np.float32), threshold, names.mask_coefficients
        )
        return Detections(found.boxes / ratio, found.scores)


def _decode_yolo_head(
    head: NDArray[np.float32], stride: int, reg_max: int, threshold: float
) -> Detections:
    """One scale's raw output, (4 * reg_max box bins + class logits) x rows x cols, to boxes: each
    side's distance is the expectation of a softmax over its bins, from the cell centre."""
    best_logit = head[4 * reg_max :].max(axis=0)
    rows, cols = np.nonzero(best_logit >= np.log(threshold / (1 - threshold)))
    if not len(rows):
        return Detections.empty()
    bins = head[: 4 * reg_max, rows, cols].reshape(4, reg_max, -1)
    weights = np.exp(bins - bins.max(axis=1, keepdims=True))
    distance = (weights * np.arange(reg_max, dtype=np.float32)[None, :, None]).sum(
        axis=1
    ) / weights.sum(axis=1)
    left, top, right, bottom = distance
    centre_x, centre_y = cols + 0.5, rows + 0.5
    boxes = (
        np.stack([centre_x - left, centre_y - top, centre_x + right, centre_y + bottom], 1) * stride
    )
    scores = 1 / (1 + np.exp(-best_logit[rows, cols]))
    return Detections(boxes.astype(np.float32), scores.astype(np.float32))


def _decode_yolo(
    predictions: NDArray[np.float32], threshold: float, mask_coefficients: int
) -> Detections:
    """`predictions` is (4 + classes + mask coefficients) x anchors; any class counts."""
    class_rows = predictions[4 : predictions.shape[0] - mask_coefficients]
    scores = class_rows.max(axis=0)
    keep = np.flatnonzero(scores >= threshold)
    cx, cy, w, h = predictions[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return Detections(boxes.astype(np.float32), scores[keep].astype(np.float32))


FAMILIES: dict[str, type[Detector]] = {"centerface": CenterFaceDetector, "yolo": YoloDetector}


def runtime_graph(spec: ModelSpec, weights: Path) -> bytes:
    """The model as onnxruntime should see it: weights out of the inputs, image size free where the
    family allows it."""
    model = strip_initializer_inputs(onnx.load(str(weights)))
    names = spec.outputs
    if spec.family == "centerface":
        model = make_dynamic(
            model,
            {names.input: ["B", 3, "H", "W"]},
            {
                str(names.heatmap): ["B", 1, "h", "w"],
                str(names.scale): ["B", 2, "h", "w"],
                str(names.offset): ["B", 2, "h", "w"],
                str(names.landmarks): ["B", 10, "h", "w"],
            },
        )
    elif names.heads:
        model = cut_at(model, [names.input], list(names.heads))
        model = make_dynamic(
            model,
            {names.input: [1, 3, "H", "W"]},
            {head: [1, "C", f"h{i}", f"w{i}"] for i, head in enumerate(names.heads)},
        )
    return bytes(model.SerializeToString())


def load_detector(
    spec: ModelSpec,
    weights: Path,
    providers: list[str],
    *,
    threads: int = 0,
    variant: Path | None = None,
) -> Detector:
    """A ready detector for `spec`: from its verified weights, or from a variant that
    `roadswarm models prepare` made of them (already in runtime form)."""
    if spec.family not in FAMILIES:
        msg = f"model {spec.name} has family {spec.family!r}; supported: {', '.join(FAMILIES)}"
        raise ModelError(msg)
    graph = variant.read_bytes() if variant else runtime_graph(spec, weights)
    sessions = sessions_for(graph, providers, threads=threads)
    return FAMILIES[spec.family](spec, sessions, f"+{variant.stem}" if variant else "")
