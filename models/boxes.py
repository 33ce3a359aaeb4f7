"""Detections as arrays: boxes in pixels of the image they were found in, and their scores."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class Detections:
    """N boxes as (x1, y1, x2, y2) pixel corners and N scores; "nothing found" has shape (0, 4)."""

    boxes: FloatArray
    scores: FloatArray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detections:
        """Boxes of a view (a crop at `scale`) mapped back to the frame: divide, then offset."""
        boxes = self.boxes / scale + np.array([dx, dy, dx, dy], np.float32)
        return Detections(boxes.astype(np.float32), self.scores)

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        if not parts:
            return Detections.empty()
        return Detections(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
        )

    def select(self, keep: NDArray[np.intp]) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep])

    def clipped(self, width: int, height: int) -> Detections:
        boxes = self.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        valid = np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        return Detections(boxes[valid], self.scores[valid])


def non_max_suppression(detections: Detections, iou_threshold: float) -> Detections:
    """Keep the best-scoring box of every group that overlaps by more than `iou_threshold`."""
    if len(detections) == 0:
        return detections
    xywh = detections.boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), detections.scores.tolist(), 0.0, iou_threshold)
    return detections.select(np.asarray(keep, dtype=np.intp).reshape(-1))


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over union of every box in `a` with every box in `b` (x1, y1, x2, y2)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(inter / np.maximum(union, 1e-9), dtype=np.float32)
