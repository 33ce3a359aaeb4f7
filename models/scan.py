"""Finding faces and plates in a frame: each detector over its views, merged in frame pixels.

The edge blurs what `PrivacyScanner.find` returns; the server's privacy audit runs the same scanner
over what the edge uploaded, so both sides look at a frame the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from models.boxes import Detections, non_max_suppression
from models.detectors import Detector, load_detector
from models.fetch import ensure_weights
from models.prepare import best_variant
from models.registry import get_model
from models.runtime import CPU, choose_providers
from models.settings import DetectionSettings, ModelSettings
from models.views import Band, View, band_rows, overview, strips, tiles

U8Image = NDArray[np.uint8]
# The frame size the band settings are given for.
BAND_LONG_SIDE_PX = 1920


class PrivacyScanner:
    """Runs the face and plate detectors over their views of a frame."""

    def __init__(self, face: Detector, plate: Detector, settings: DetectionSettings) -> None:
        self.face = face
        self.plate = plate
        self.settings = settings

    @classmethod
    def load_detectors(
        cls, settings: DetectionSettings, model_settings: ModelSettings
    ) -> tuple[Detector, Detector]:
        """Face and plate detectors from the registry, on the best (or configured) provider."""
        providers = choose_providers(settings.provider)
        detectors = []
        for name in (settings.face_model, settings.plate_model):
            spec = get_model(name)
            weights = ensure_weights(spec, model_settings)
            # Variants are measured on the CPU: on CUDA the int8 plate model the CPU prefers ran
            # 1.5x slower than fp32, so elsewhere the published weights are loaded.
            measured_here = providers[0] == CPU
            variant = (
                best_variant(spec, model_settings)
                if settings.use_prepared and measured_here
                else None
            )
            detectors.append(
                load_detector(spec, weights, providers, threads=settings.threads, variant=variant)
            )
        return detectors[0], detectors[1]

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
        top, bottom = band_rows(height, horizon, self.band(detector.task, max(width, height)))
        if bottom <= top:
            detail: list[View] = []
        else:
            # A model of fixed size gets square tiles; one that takes any size gets full-width
            # strips, short enough to bound the memory its activations need.
            fixed = detector.fixed_size
            detail = (
                tiles(0, top, width, bottom - top, (min(fixed), min(fixed)), s.tile_overlap_px)
                if fixed
                else strips(0, top, width, bottom - top, s.strip_max_rows, s.tile_overlap_px)
            )
        whole = overview(width, height, s.overview_px)
        # Targets that fill the frame are found only when it is shrunk, so the overview always runs
        # unless it is the frame at full size, which a detail view may already be.
        if whole.scale == 1.0 and whole in detail:
            return detail
        return [whole, *detail]

    def band(self, task: str, long_side_px: int) -> Band:
        """The detail band of a task's targets, for a frame with this long side."""
        s = self.settings
        above, below = (
            (s.face_band_above_px, s.face_band_below_px)
            if task == "face"
            else (s.plate_band_above_px, s.plate_band_below_px)
        )
        scale = long_side_px / BAND_LONG_SIDE_PX
        return Band(round(above * scale), round(below * scale))

    def find(
        self,
        image: U8Image,
        *,
        horizon: float | None = None,
        thresholds: tuple[float, float] | None = None,
    ) -> tuple[Detections, Detections]:
        """Faces and plates in frame pixels, merged over all views; `thresholds` (face, plate)
        replace the configured ones."""
        height, width = image.shape[:2]
        face_t, plate_t = thresholds or (
            self.settings.face_threshold,
            self.settings.plate_threshold,
        )
        found = [
            self._run(detector, image, self.views(detector, width, height, horizon), threshold)
            for detector, threshold in ((self.face, face_t), (self.plate, plate_t))
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


def _resize(image: U8Image, scale: float) -> U8Image:
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
