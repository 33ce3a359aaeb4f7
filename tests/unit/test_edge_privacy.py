"""The privacy stage's own logic: views, merging, blurring and failing closed.

A marker detector (it finds magenta rectangles) stands in for the ONNX models here, so each test
knows exactly what must be found; the real models are tested in tests/integration.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.anonymize import Anonymized, Anonymizer, Unusable, horizon_row
from edge.blur import blur_regions, covered_fraction, expand
from edge.settings import PrivacySettings
from models.boxes import Detections
from models.detectors import Detector
from models.registry import get_model
from models.views import Band, band_rows, strips, tiles

MAGENTA = (255, 0, 255)


class MarkerDetector(Detector):
    """Finds magenta rectangles at least `min_px` tall in whatever image it is given."""

    def __init__(
        self, task: str, *, fixed: tuple[int, int] | None = None, fail: bool = False
    ) -> None:
        name = "centerface" if task == "face" else "platedet-yolov8s-seg"
        super().__init__(get_model(name), session=None)
        self.min_px = 8
        self.fixed = fixed
        self.fail = fail
        self.calls = 0

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        return self.fixed

    def detect(self, image: NDArray[np.uint8], threshold: float) -> Detections:
        self.calls += 1
        if self.fail:
            raise RuntimeError("model crashed")
        mask = cv2.inRange(image, (200, 0, 200), (255, 60, 255))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:count] if h >= self.min_px]
        found = np.array(boxes, np.float32).reshape(-1, 4)
        return Detections(found, np.ones(len(found), np.float32))


def frame_with_markers(boxes: list[tuple[int, int, int, int]]) -> NDArray[np.uint8]:
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 140, (1080, 1920, 3), dtype=np.uint8)
    for x, y, w, h in boxes:
        frame[y : y + h, x : x + w] = MAGENTA[::-1]  # BGR
    return frame


def anonymizer(*, tiled: bool = True, **settings: int) -> Anonymizer:
    """Markers stand in for faces and plates; the plate one has a fixed input size (so is tiled)."""
    chosen = PrivacySettings().model_copy(update=settings)
    plate = MarkerDetector("plate", fixed=(640, 640) if tiled else None)
    return Anonymizer(MarkerDetector("face"), plate, chosen)


def test_tiles_cover_the_region_with_the_overlap() -> None:
    """Every pixel of the region is in a tile, and neighbours overlap by at least the overlap."""
    views = tiles(0, 300, 1920, 500, (640, 640), 160)
    covered = np.zeros((1080, 1920), bool)
    for v in views:
        assert v.width <= 640 and v.height <= 640
        covered[v.y0 : v.y0 + v.height, v.x0 : v.x0 + v.width] = True
    assert covered[300:800].all() and not covered[:300].any() and not covered[800:].any()
    starts = sorted(v.x0 for v in views)
    assert all(b - a <= 640 - 160 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("rows", [448, 641, 720, 1080, 2160])
def test_strips_are_as_few_and_as_short_as_the_overlap_allows(rows: int) -> None:
    """Full-width strips cover every row, neighbours overlap by the overlap (not more: 720 rows
    are two strips of 440, not of 640), and there are no more strips than tiles would cut."""
    views = strips(0, 100, 1280, rows, 640, 160)
    covered = np.zeros(rows + 200, bool)
    for v in views:
        assert (v.x0, v.width, v.scale) == (0, 1280, 1.0) and v.height <= 640
        covered[v.y0 : v.y0 + v.height] = True
    assert covered[100 : 100 + rows].all() and covered.sum() == rows
    overlaps = [a.y0 + a.height - b.y0 for a, b in itertools.pairwise(views)]
    assert all(160 <= o <= 161 for o in overlaps)
    assert len(views) == len(tiles(0, 100, 1280, rows, (1280, 640), 160))
    if rows == 720:
        assert [v.height for v in views] == [440, 440]


def test_band_follows_the_horizon_and_stays_in_the_frame() -> None:
    """The detail band is the rows around the horizon, clipped; no horizon means the whole frame."""
    assert band_rows(1080, 455.0, Band(160, 352)) == (295, 807)
    assert band_rows(1080, 1000.0, Band(160, 352)) == (840, 1080)
    assert band_rows(1080, None, Band(160, 352)) == (0, 1080)
    assert band_rows(1080, -400.0, Band(160, 352)) == (0, 0)


def test_horizon_row_from_the_calibration() -> None:
    """A camera pitched down sees the horizon above the image centre by f * tan(pitch)."""
    matrix = [[805.0, 0.0, 960.0], [0.0, 805.0, 540.0], [0.0, 0.0, 1.0]]
    assert horizon_row(matrix, 0.0) == pytest.approx(540.0)
    assert horizon_row(matrix, 6.0) == pytest.approx(540 - 805 * np.tan(np.radians(6)))


@pytest.mark.parametrize("tiled", [True, False])
def test_small_distant_plates_are_found_only_at_full_resolution(tiled: bool) -> None:
    """A 12 px marker near the horizon vanishes in the 640 px overview but the full-resolution
    detail views (tiles for a fixed-size model, one strip otherwise) find it."""
    frame = frame_with_markers([(1500, 470, 40, 12), (300, 700, 300, 90)])
    overview_only = anonymizer(tiled=tiled, plate_band_above_px=0, plate_band_below_px=0)
    _, plates = overview_only.find(frame, horizon=-10_000.0)
    assert len(plates) == 1  # only the big one
    _, plates = anonymizer(tiled=tiled).find(frame, horizon=455.0)
    found = sorted(plates.boxes.tolist())
    assert len(found) == 2
    assert found[0] == pytest.approx([300, 700, 600, 790], abs=3)
    assert found[1] == pytest.approx([1500, 470, 1540, 482], abs=1)


def detail_rows(chosen: Anonymizer, task: str, size: tuple[int, int]) -> tuple[int, int]:
    """First and last+1 row of the full-resolution views of one task's detector."""
    detector = chosen.face if task == "face" else chosen.plate
    horizon = 455.0 * size[1] / 1080
    detail = [v for v in chosen.views(detector, *size, horizon) if v.scale == 1.0]
    return min(v.y0 for v in detail), max(v.y0 + v.height for v in detail)


def test_each_task_has_its_own_band_around_the_horizon() -> None:
    """Faces are near camera height, so close to the horizon either way; plates sit low on cars,
    so their band reaches far below it and little above."""
    chosen = anonymizer(tiled=False)
    assert detail_rows(chosen, "face", (1920, 1080)) == (455 - 192, 455 + 192)
    assert detail_rows(chosen, "plate", (1920, 1080)) == (455 - 96, 455 + 352)


def test_the_band_scales_with_the_frame() -> None:
    """An overview pixel covers twice the frame pixels in a frame twice as wide, so a target
    too small for the overview reaches twice as far from the horizon in frame pixels."""
    chosen = anonymizer(tiled=False)
    assert detail_rows(chosen, "plate", (3840, 2160)) == (910 - 192, 910 + 704)
    assert detail_rows(chosen, "face", (1280, 720)) == (175, 432)  # horizon 303.3, band 128


def test_a_small_plate_low_below_the_horizon_is_found() -> None:
    """A 14 px plate 300 px below the horizon (a car 6 m ahead, seen from 1.5 m up) is inside
    the plate band, which the face band need not cover."""
    frame = frame_with_markers([(900, 755, 60, 14)])
    _, plates = anonymizer(tiled=False).find(frame, horizon=455.0)
    assert plates.boxes.tolist() == [pytest.approx([900, 755, 960, 769], abs=1)]


def test_overlapping_tiles_do_not_duplicate_a_detection() -> None:
    """A marker inside the overlap of two tiles is reported once, though both tiles see it."""
    detector = MarkerDetector("plate", fixed=(640, 640))
    chosen = Anonymizer(MarkerDetector("face"), detector, PrivacySettings())
    views = chosen.views(detector, 1920, 1080, 455.0)
    marker = (560, 500, 30, 12)
    inside = [
        v
        for v in views
        if v.scale == 1 and v.x0 <= marker[0] and marker[0] + marker[2] <= v.x0 + v.width
    ]
    assert len(inside) == 2
    _, plates = chosen.find(frame_with_markers([marker]), horizon=455.0)
    assert len(plates) == 1


def test_anonymize_blurs_every_marker_and_reports_the_share() -> None:
    """No magenta survives, the boxes are reported, and the blurred share matches their margins."""
    boxes = [(1500, 470, 40, 12), (300, 700, 300, 90)]
    result = anonymizer().anonymize(frame_with_markers(boxes), horizon=455.0)
    assert isinstance(result, Anonymized)
    mask = cv2.inRange(result.image, (200, 0, 200), (255, 60, 255))
    assert int(mask.sum()) == 0
    expected = covered_fraction(expand(result.plates.boxes, 0.15, 1920, 1080), 1920, 1080)
    assert result.blurred_fraction == pytest.approx(expected)
    assert 0 < result.blurred_fraction < 0.03


@pytest.mark.parametrize(
    "frame",
    [
        None,
        np.zeros((1080, 1920), np.uint8),
        np.zeros((1080, 1920, 3), np.float32),
        np.zeros((4, 4, 3), np.uint8),
    ],
)
def test_frames_that_cannot_be_checked_are_unusable(frame: object) -> None:
    """Anything that is not a colour 8-bit image is refused with a reason, never passed on."""
    result = anonymizer().anonymize(frame)
    assert isinstance(result, Unusable) and result.reason


def test_a_failing_model_marks_the_frame_unusable() -> None:
    """If a detector raises, the frame is unusable: fail closed, no image comes back."""
    failing = Anonymizer(
        MarkerDetector("face", fail=True), MarkerDetector("plate"), PrivacySettings()
    )
    result = failing.anonymize(frame_with_markers([(10, 10, 50, 50)]))
    assert isinstance(result, Unusable)
    assert "model crashed" in result.reason


def text_patch() -> NDArray[np.uint8]:
    patch = np.full((60, 240, 3), 235, np.uint8)
    cv2.putText(
        patch, "ABC-123", (8, 46), cv2.FONT_HERSHEY_DUPLEX, 1.6, (15, 15, 15), 3, cv2.LINE_AA
    )
    return patch


@pytest.mark.parametrize("mode", ["gaussian", "pixelate"])
def test_blur_leaves_nothing_readable_after_jpeg(mode: str) -> None:
    """After blurring and JPEG at quality 90, the detail of the text is gone (near-zero correlation)."""
    patch = text_patch()
    blurred = blur_regions(patch, np.array([[0, 0, 240, 60]], np.int32), mode)  # type: ignore[arg-type]
    _, encoded = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 90])
    decoded = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), np.float32)
    original = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = original - cv2.GaussianBlur(original, (0, 0), 6)
    kept = decoded - cv2.GaussianBlur(decoded, (0, 0), 6)
    correlation = float(np.corrcoef(detail.ravel(), kept.ravel())[0, 1])
    assert abs(correlation) < 0.1, correlation
    assert kept.std() < 0.1 * detail.std()


def test_expand_adds_a_margin_and_clips_to_the_image() -> None:
    """Boxes grow by the margin fraction (at least 4 px) and never leave the image."""
    boxes = np.array([[100, 100, 200, 120], [0, 0, 10, 10]], np.float32)
    grown = expand(boxes, 0.15, 150, 1000).tolist()
    assert grown[0] == [85, 96, 150, 124]
    assert grown[1] == [0, 0, 14, 14]
