"""The privacy stage with the real ONNX models: on made images, through the CLI, and on the shared
real data when it is present (recall as evidence; the benchmark reports the full figures)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.anonymize import Anonymized, Anonymizer
from edge.settings import PrivacySettings
from models.boxes import iou_matrix
from models.fetch import WeightsMissingError
from models.settings import ModelSettings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "privacy"


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    """The real detectors; their weights come from `roadswarm models fetch` (run by `make test`)."""
    try:
        return Anonymizer.load(PrivacySettings(), ModelSettings())
    except WeightsMissingError as exc:
        if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
            raise
        pytest.skip(str(exc))


def labelled_plates(folder: Path, every: int) -> list[tuple[Path, list[float]]]:
    items = []
    for label in sorted(folder.glob("*.txt"))[::every]:
        fields = label.read_text().split()
        items.append((label.with_suffix(".jpg"), [float(v) for v in fields[1:5]]))
    return items


def recall(anonymizer: Anonymizer, items: list[tuple[Path, list[float]]], kind: str) -> float:
    hits = 0
    for path, (x, y, w, h) in items:
        faces, plates = anonymizer.find(np.asarray(cv2.imread(str(path)), np.uint8))
        found = faces if kind == "face" else plates
        truth = np.array([[x, y, x + w, y + h]], np.float32)
        hits += bool(len(found)) and float(iou_matrix(truth, found.boxes).max()) >= 0.3
    return hits / len(items)


def test_plain_ground_has_nothing_to_blur(anonymizer: Anonymizer) -> None:
    """A frame of road texture without people or cars comes back unchanged, nothing detected."""
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(60, 120, (1080, 1920, 3), dtype=np.uint8), (0, 0), 2)
    result = anonymizer.anonymize(frame, horizon=455.0)
    assert isinstance(result, Anonymized)
    assert len(result.faces) == 0 and len(result.plates) == 0
    assert np.array_equal(result.image, frame)


@pytest.mark.skipif(not (DATA / "plates").is_dir(), reason="shared privacy data not present")
@pytest.mark.parametrize(("name", "every"), [("openalpr-eu", 3), ("openalpr-br", 2)])
def test_real_plates_are_found(anonymizer: Anonymizer, name: str, every: int) -> None:
    """Most labelled real plates are found (a sample; bench/bench_privacy.py measures all)."""
    assert recall(anonymizer, labelled_plates(DATA / "plates" / name, every), "plate") >= 0.9


@pytest.mark.skipif(not (DATA / "faces").is_dir(), reason="shared privacy data not present")
def test_real_faces_are_found(anonymizer: Anonymizer) -> None:
    """Labelled real faces are found at native size."""
    folder = DATA / "faces" / "rbnr-set1"
    with (folder / "faces.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    items = [(folder / r["image"], [float(r[k]) for k in "xywh"]) for r in rows[::2]]
    assert recall(anonymizer, items, "face") >= 0.97


def test_cli_blurs_good_images_and_reports_bad_ones(anonymizer: Anonymizer, tmp_path: Path) -> None:
    """`roadswarm edge anonymize` writes what it could check, lists what it could not, exits 5."""
    source = tmp_path / "in"
    source.mkdir()
    real = sorted((DATA / "plates" / "openalpr-eu").glob("*.jpg"))[:1]
    image = (
        np.asarray(cv2.imread(str(real[0])), np.uint8)
        if real
        else np.full((480, 640, 3), 90, np.uint8)
    )
    cv2.imwrite(str(source / "good.jpg"), image)
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    command = [
        sys.executable,
        "-m",
        "roadswarm",
        "edge",
        "anonymize",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--json",
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 5, done.stderr
    rows = json.loads(done.stdout)
    assert all(r["image"] == "good.jpg" and r["class"] in {"face", "plate"} for r in rows)
    assert (tmp_path / "out" / "good.jpg").is_file()
    assert not (tmp_path / "out" / "broken.jpg").exists()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["unusable"]) == {"broken.jpg"}
    assert "broken.jpg" in done.stderr and done.stderr.count("\n") == 1
    if real:
        assert any(r["class"] == "plate" for r in rows)
