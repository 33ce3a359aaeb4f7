"""The shared privacy evaluation sets, the image variants they are scored on, and the scoring.

Plates: `NAME.txt` beside `NAME.jpg`, one tab-separated line `NAME.jpg x y w h TEXT`.
Faces: `faces.csv` with columns `image,x,y,w,h`. Boxes are read as (x1, y1, x2, y2) pixels.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.anonymize import Anonymizer
from edge.blur import covered_fraction, expand
from models.boxes import Detections, FloatArray, iou_matrix

U8Image = NDArray[np.uint8]
Variant = Callable[[U8Image, FloatArray], tuple[U8Image, FloatArray]]
MATCH_IOU = 0.3
CANVAS_GREY = 114
BLURRED_TARGET = 0.08


@dataclass(frozen=True)
class Sample:
    """One image and its labelled boxes (K x 4, x1 y1 x2 y2)."""

    path: Path
    boxes: FloatArray


@dataclass(frozen=True)
class EvalSet:
    """A labelled folder: what it holds and the recall each variant must reach (None: no target)."""

    folder: str
    kind: str  # "face" or "plate"
    targets: dict[str, float | None]


EVAL_SETS = (
    EvalSet("plates/openalpr-eu", "plate", {"native": 0.97, "dashcam": 0.95}),
    EvalSet("plates/openalpr-br", "plate", {"native": 0.97, "dashcam": 0.95}),
    EvalSet("faces/rbnr-set1", "face", {"native": 0.99, "third": 0.97, "dashcam": None}),
)


def _xywh(values: list[str]) -> list[float]:
    x, y, w, h = (float(v) for v in values)
    return [x, y, x + w, y + h]


def _array(rows: list[list[float]]) -> FloatArray:
    return np.asarray(rows, np.float32).reshape(-1, 4)


def load_plates(folder: Path) -> list[Sample]:
    """One sample per `NAME.txt` label file whose image exists."""
    samples = []
    for label in sorted(folder.glob("*.txt")):
        rows = [line.split("\t") for line in label.read_text().splitlines() if line.strip()]
        image = folder / rows[0][0] if rows else label.with_suffix(".jpg")
        if image.exists():
            samples.append(Sample(image, _array([_xywh(row[1:5]) for row in rows])))
    return samples


def load_faces(folder: Path) -> list[Sample]:
    """One sample per image named in `faces.csv`, with all of its face boxes."""
    boxes: dict[str, list[list[float]]] = {}
    with (folder / "faces.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["image"], []).append(
                _xywh([row["x"], row["y"], row["w"], row["h"]])
            )
    return [Sample(folder / name, _array(rows)) for name, rows in sorted(boxes.items())]


def native(image: U8Image, boxes: FloatArray) -> tuple[U8Image, FloatArray]:
    """The image as it is."""
    return image, boxes


def _resized(image: U8Image, boxes: FloatArray, scale: float) -> tuple[U8Image, FloatArray]:
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    factors = np.array([size[0] / width, size[1] / height] * 2, np.float32)
    return small, (boxes * factors).astype(np.float32)


def third(image: U8Image, boxes: FloatArray) -> tuple[U8Image, FloatArray]:
    """The image at one third of its size."""
    return _resized(image, boxes, 1 / 3)


def dashcam(image: U8Image, boxes: FloatArray) -> tuple[U8Image, FloatArray]:
    """The image at half size in a grey canvas twice its width and height: centred horizontally,
    its bottom edge at 80 % of the canvas height (roughly where a car ahead sits in a dashcam)."""
    height, width = image.shape[:2]
    small, moved = _resized(image, boxes, 0.5)
    canvas = np.full((2 * height, 2 * width, 3), CANVAS_GREY, np.uint8)
    x0 = (2 * width - small.shape[1]) // 2
    y0 = round(0.8 * 2 * height) - small.shape[0]
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas, (moved + np.array([x0, y0, x0, y0], np.float32)).astype(np.float32)


VARIANTS: dict[str, Variant] = {"native": native, "dashcam": dashcam, "third": third}


@dataclass(frozen=True)
class Scored:
    """What the detectors did on one variant of one sample."""

    name: str
    labels: int
    matched: int
    label_h_px: list[float]
    best_iou: list[float]
    faces: int
    plates: int
    blurred: float


def score(anonymizer: Anonymizer, sample: Sample, kind: str, variant: Variant) -> Scored:
    """Recall of the labelled boxes (IoU >= 0.3 with a detection of their class) and blurred share."""
    image, labels = variant(np.asarray(cv2.imread(str(sample.path)), np.uint8), sample.boxes)
    faces, plates = anonymizer.find(image, horizon=None)
    found = faces if kind == "face" else plates
    best = _best_iou(labels, found)
    height, width = image.shape[:2]
    regions = expand(
        np.concatenate([faces.boxes, plates.boxes]),
        anonymizer.settings.margin_fraction,
        width,
        height,
    )
    return Scored(
        sample.path.name,
        len(labels),
        int((best >= MATCH_IOU).sum()),
        [round(float(h), 1) for h in labels[:, 3] - labels[:, 1]],
        [round(float(iou), 2) for iou in best],
        len(faces),
        len(plates),
        covered_fraction(regions, width, height),
    )


def _best_iou(labels: FloatArray, found: Detections) -> FloatArray:
    """Each label's best overlap with a detection of its class (0 when nothing was found)."""
    if not len(found):
        return np.zeros(len(labels), np.float32)
    return np.asarray(iou_matrix(labels, found.boxes).max(axis=1), np.float32)


def _missed(scored: list[Scored]) -> Iterator[dict[str, object]]:
    for s in scored:
        for height, iou in zip(s.label_h_px, s.best_iou, strict=True):
            if iou < MATCH_IOU:
                yield {"image": s.name, "label_h_px": height, "best_iou": iou}


def summarise(scored: list[Scored], target: float | None, seconds: float) -> dict[str, object]:
    """Recall, blurred share and detection counts of one set and variant, beside their targets."""
    labels = sum(s.labels for s in scored)
    worst = max(scored, key=lambda s: s.blurred)
    return {
        "images": len(scored),
        "labels": labels,
        "recall": round(sum(s.matched for s in scored) / max(labels, 1), 4),
        "recall_target": target,
        "mean_blurred_fraction": round(float(np.mean([s.blurred for s in scored])), 4),
        "blurred_target": BLURRED_TARGET,
        "max_blurred": {"image": worst.name, "fraction": round(worst.blurred, 4)},
        "mean_faces_per_image": round(float(np.mean([s.faces for s in scored])), 2),
        "mean_plates_per_image": round(float(np.mean([s.plates for s in scored])), 2),
        "missed": list(_missed(scored)),
        "seconds": round(seconds, 1),
    }


def evaluate_set(anonymizer: Anonymizer, data: Path, spec: EvalSet) -> dict[str, object]:
    """Every variant of one set, or a note when its folder is absent."""
    folder = data / spec.folder
    if not folder.is_dir():
        return {"skipped": f"{folder} is missing"}
    samples = load_faces(folder) if spec.kind == "face" else load_plates(folder)
    result: dict[str, object] = {}
    for name, target in spec.targets.items():
        started = time.perf_counter()
        scored = [score(anonymizer, s, spec.kind, VARIANTS[name]) for s in samples]
        result[name] = summarise(scored, target, time.perf_counter() - started)
    return result
