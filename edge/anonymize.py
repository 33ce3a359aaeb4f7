"""Finding and blurring faces and plates in a frame, failing closed.

A frame leaves `anonymize` either blurred, with every detection that was blurred, or marked
unusable with the reason; never unblurred.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.blur import blur_regions, covered_fraction, expand
from edge.settings import PrivacySettings
from edge.views import Band, View, band_rows, overview, tiles
from models.boxes import Detections, non_max_suppression
from models.detectors import Detector, load_detector
from models.fetch import ensure_weights
from models.prepare import best_variant
from models.registry import get_model
from models.runtime import choose_providers
from models.settings import ModelSettings

log = logging.getLogger(__name__)
U8Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Anonymized:
    """The blurred frame and what was blurred (boxes in frame pixels, before the margin)."""

    image: U8Image
    faces: Detections
    plates: Detections
    blurred_fraction: float


@dataclass(frozen=True)
class Unusable:
    """A frame that could not be checked; it must not be kept or uploaded."""

    reason: str


def horizon_row(camera_matrix: list[list[float]], pitch_deg: float) -> float:
    """Image row of the horizon for a camera pitched `pitch_deg` down (OpenCV pixel centres)."""
    focal, centre_row = camera_matrix[1][1], camera_matrix[1][2]
    return float(centre_row - focal * math.tan(math.radians(pitch_deg)))


class Anonymizer:
    """Runs the face and plate detectors over their views of a frame and blurs what they find."""

    def __init__(self, face: Detector, plate: Detector, settings: PrivacySettings) -> None:
        self.face = face
        self.plate = plate
        self.settings = settings

    @classmethod
    def load(cls, settings: PrivacySettings, model_settings: ModelSettings) -> Anonymizer:
        """Detectors from the registry, on the best (or the configured) execution provider."""
        providers = choose_providers(settings.provider)
        detectors = []
        for name in (settings.face_model, settings.plate_model):
            spec = get_model(name)
            weights = ensure_weights(spec, model_settings)
            variant = best_variant(spec, model_settings) if settings.use_prepared else None
            detectors.append(
                load_detector(spec, weights, providers, threads=settings.threads, variant=variant)
            )
        return cls(detectors[0], detectors[1], settings)

    @property
    def model_versions(self) -> dict[str, str]:
        """Which weights checked a frame: recorded with every frame that is kept."""
        return {
            d.task: f"{d.spec.name}@{d.spec.sha256[:12]}{d.variant}"
            for d in (self.face, self.plate)
        }

    def views(
        self, detector: Detector, width: int, height: int, horizon: float | None
    ) -> list[View]:
        """An overview of the frame, then the detail band at full resolution: as one strip where
        the model takes any size, as overlapping tiles where its input size is fixed."""
        s = self.settings
        band = Band(s.band_above_horizon_px, s.band_below_horizon_px)
        top, bottom = band_rows(height, horizon, band)
        if bottom <= top:
            detail: list[View] = []
        else:
            # A model of fixed size gets square tiles; one that takes any size gets full-width
            # strips, short enough to bound the memory its activations need.
            fixed = detector.fixed_size
            tile = (min(fixed), min(fixed)) if fixed else (width, s.strip_max_rows)
            detail = tiles(0, top, width, bottom - top, tile, s.tile_overlap_px)
        whole = overview(width, height, s.overview_px)
        # Targets that fill the frame are found only when it is shrunk, so the overview always runs
        # unless it is the frame at full size, which a detail view may already be.
        if whole.scale == 1.0 and whole in detail:
            return detail
        return [whole, *detail]

    def find(
        self, image: U8Image, *, horizon: float | None = None
    ) -> tuple[Detections, Detections]:
        """Faces and plates in frame pixels, merged over all views."""
        height, width = image.shape[:2]
        found = [
            self._run(detector, image, self.views(detector, width, height, horizon), threshold)
            for detector, threshold in (
                (self.face, self.settings.face_threshold),
                (self.plate, self.settings.plate_threshold),
            )
        ]
        return found[0], found[1]

    def _run(
        self, detector: Detector, image: U8Image, views: list[View], threshold: float
    ) -> Detections:
        found = []
        for view in views:
            crop = image[view.y0 : view.y0 + view.height, view.x0 : view.x0 + view.width]
            if view.scale != 1.0:
                crop = _resize(crop, view.scale)
            found.append(detector.detect(crop, threshold).shifted(view.x0, view.y0, view.scale))
        return non_max_suppression(Detections.concat(found), self.settings.merge_iou)

    def anonymize(self, image: object, *, horizon: float | None = None) -> Anonymized | Unusable:
        """The frame with every face and plate blurred, or why it could not be checked."""
        problem = _image_problem(image)
        if problem:
            return Unusable(problem)
        frame: U8Image = image  # type: ignore[assignment]  # checked by _image_problem
        try:
            faces, plates = self.find(frame, horizon=horizon)
        except Exception as exc:  # any failure of a model means the frame was not checked
            log.warning("privacy check failed: %s", exc)
            return Unusable(f"the privacy detectors failed on this frame: {exc}")
        height, width = frame.shape[:2]
        regions = expand(
            np.concatenate([faces.boxes, plates.boxes]),
            self.settings.margin_fraction,
            width,
            height,
        )
        blurred = blur_regions(frame, regions, self.settings.blur)
        return Anonymized(blurred, faces, plates, covered_fraction(regions, width, height))


def _image_problem(image: object) -> str | None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return "the frame is not an 8-bit image"
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
        return f"the frame has shape {image.shape}; expected height x width x 3, at least 16 px"
    return None


def _resize(image: U8Image, scale: float) -> U8Image:
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
