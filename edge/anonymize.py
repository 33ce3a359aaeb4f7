"""Finding and blurring faces and plates in a frame, failing closed.

A frame leaves `anonymize` either blurred, with every detection that was blurred, or marked
unusable with the reason; never unblurred.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge.blur import blur_regions, covered_fraction, expand
from edge.settings import PrivacySettings
from models.boxes import Detections
from models.detectors import Detector
from models.runtime import usable_cores
from models.scan import PrivacyScanner
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


class Anonymizer(PrivacyScanner):
    """Finds faces and plates with the privacy scanner and blurs them."""

    settings: PrivacySettings

    def __init__(
        self, face: Detector, plate: Detector, settings: PrivacySettings, frames_at_once: int = 1
    ) -> None:
        super().__init__(face, plate, settings)
        self.frames_at_once = frames_at_once

    @classmethod
    def load(
        cls, settings: PrivacySettings, model_settings: ModelSettings, *, parallel: bool = False
    ) -> Anonymizer:
        """Detectors from the registry, on the best (or the configured) execution provider.

        `parallel`: the caller anonymizes `settings.parallel_frames` frames at once (one per
        usable core by default), so unless threads are configured each detector call gets an
        equal share of the cores instead of all of them."""
        frames = (settings.parallel_frames or usable_cores()) if parallel else 1
        if frames > 1:
            settings = settings.sharing_cores(frames)
        return cls(*cls.load_detectors(settings, model_settings), settings, frames)

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
