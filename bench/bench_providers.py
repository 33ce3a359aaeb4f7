"""The face and plate detectors on each onnxruntime execution provider: speed, agreement, recall.

For each provider asked for (CPU first: it is the reference) and each model choice, the detectors
are loaded the way the product loads them, through `PrivacyScanner.load_detectors` (or
`load_detector` for one named variant), and timed:

1. each detector alone on the labelled images at their own size (`Detector.detect`): the first call
   on each image (on a GPU a new input shape plans its kernels) and the median of `--repeats` calls
   after it;
2. `PrivacyScanner.find` on whole frames (`--frames`, e.g. simulated 1920x1080 dashcam frames; the
   horizon comes from a `calibration.json` beside them, as the edge app's does).

Model choices (`--variants`): `published` (the weights as fetched), `prepared` (what the product
loads by default: on the CPU the fastest variant `roadswarm models prepare` offered, elsewhere the
published weights, since variants are timed on the CPU), or a
variant by name (`fp32`, `int8`: that variant of each model where prepare made one, offered or not,
else the published model). Agreement is the share of the CPU published models' detections found
again (IoU >= 0.5, as `models.prepare` judges variants); recall is the share of labelled boxes a
detection of their kind overlaps at IoU >= 0.3, as in `bench.bench_privacy` (here per detector, at
the image's own size, not through the scanner's views).

    python -m bench.bench_providers [--providers cpu,cuda] [--variants published,prepared]
        [--configs cpu/published,cuda+heuristic/prepared,...] [--plates DIR] [--faces DIR]
        [--frames DIR] [--limit 30] [--frame-limit 8] [--repeats 3] [--json-out FILE]

`cuda+heuristic` (or `cuda+default`) is a what-if: the CUDA provider with that
`cudnn_conv_algo_search` instead of onnxruntime's default EXHAUSTIVE, which benchmarks every
convolution's algorithms for each new input shape.

A provider this onnxruntime build or machine lacks is reported and skipped. Weights come from
`ROADSWARM_MODELS_DIR` as for the edge app.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from bench._privacy_data import MATCH_IOU, Sample, load_faces, load_plates
from edge.anonymize import horizon_row
from models.boxes import FloatArray, iou_matrix
from models.detectors import Detector, load_detector
from models.fetch import ensure_weights, file_sha256
from models.prepare import MANIFEST, VariantReport, agreement
from models.registry import get_model
from models.runtime import PROVIDER_ALIASES, ProviderUnavailableError, choose_providers
from models.scan import PrivacyScanner
from models.settings import DetectionSettings, ModelSettings

U8Image = NDArray[np.uint8]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "privacy"
REFERENCE = ("cpu", "published")
TASKS = ("face", "plate", "frame")


@dataclass
class Timed:
    """One detector (or the whole scanner) over a set of images."""

    first_ms: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    found: list[FloatArray] = field(default_factory=list)


@dataclass(frozen=True)
class Inputs:
    """The images each task runs on, with labels where there are any."""

    faces: list[tuple[U8Image, FloatArray]]
    plates: list[tuple[U8Image, FloatArray]]
    frames: list[U8Image]
    horizon: float | None


# Inputs --------------------------------------------------------------------------------------


def _read(path: Path) -> U8Image | None:
    image = cv2.imread(str(path))
    return None if image is None else np.asarray(image, np.uint8)


def _labelled(samples: list[Sample], limit: int) -> list[tuple[U8Image, FloatArray]]:
    read = ((_read(s.path), s.boxes) for s in samples[:limit])
    return [(image, boxes) for image, boxes in read if image is not None]


def read_inputs(args: argparse.Namespace) -> Inputs:
    """Up to `--limit` images of each kind; a folder that is missing gives none."""
    faces = load_faces(args.faces) if (args.faces / "faces.csv").is_file() else []
    plates = load_plates(args.plates) if args.plates.is_dir() else []
    frames: list[U8Image] = []
    horizon = None
    if args.frames and args.frames.is_dir():
        paths = sorted(p for p in args.frames.iterdir() if p.suffix.lower() in {".jpg", ".png"})
        frames = [i for i in (_read(p) for p in paths[: args.frame_limit]) if i is not None]
        calibration = args.frames / "calibration.json"
        if calibration.is_file():
            data = json.loads(calibration.read_text())
            horizon = horizon_row(data["camera_matrix"], data["pitch_deg"])
    return Inputs(_labelled(faces, args.limit), _labelled(plates, args.limit), frames, horizon)


# Loading -------------------------------------------------------------------------------------


def variant_path(name: str, variant: str, model_settings: ModelSettings) -> Path | None:
    """The intact file of a prepared variant of model `name`, offered or not, if there is one."""
    spec = get_model(name)
    manifest = model_settings.models_dir / spec.name / MANIFEST
    if not manifest.is_file():
        return None
    for entry in json.loads(manifest.read_text()):
        report = VariantReport(**entry)
        path = Path(report.path)
        if (
            report.variant == variant
            and report.source_sha256 == spec.sha256
            and path.is_file()
            and file_sha256(path) == report.sha256
        ):
            return path
    return None


@contextmanager
def cudnn_algo_search(mode: str | None) -> Iterator[None]:
    """What-if, for this benchmark only: sessions made inside get the CUDA provider option
    `cudnn_conv_algo_search=mode` (onnxruntime's default is EXHAUSTIVE) instead of none."""
    if not mode:
        yield
        return
    original = ort.InferenceSession

    def session(*args: Any, providers: list[str], **kwargs: Any) -> Any:
        options = {"cudnn_conv_algo_search": mode}
        with_options = [(p, options) if p == "CUDAExecutionProvider" else p for p in providers]
        return original(*args, providers=with_options, **kwargs)

    with mock.patch.object(ort, "InferenceSession", session):
        yield


def load_scanner(provider: str, variant: str, model_settings: ModelSettings) -> PrivacyScanner:
    """The scanner as the edge app builds it, on `provider`, with the models `variant` names;
    `cuda+heuristic` (or `+default`) is CUDA with that cuDNN algorithm search (a what-if)."""
    provider, _, search = provider.partition("+")
    with cudnn_algo_search(search.upper()):
        return _load_scanner(provider, variant, model_settings)


def _load_scanner(provider: str, variant: str, model_settings: ModelSettings) -> PrivacyScanner:
    settings = DetectionSettings(provider=provider, use_prepared=variant == "prepared")
    if variant in ("published", "prepared"):
        face, plate = PrivacyScanner.load_detectors(settings, model_settings)
        return PrivacyScanner(face, plate, settings)
    providers = choose_providers(provider)
    detectors = []
    for name in (settings.face_model, settings.plate_model):
        spec = get_model(name)
        weights = ensure_weights(spec, model_settings)
        chosen = variant_path(name, variant, model_settings)
        detectors.append(
            load_detector(spec, weights, providers, threads=settings.threads, variant=chosen)
        )
    return PrivacyScanner(detectors[0], detectors[1], settings)


# Timing --------------------------------------------------------------------------------------


def _ms(call: Callable[[], FloatArray]) -> tuple[float, FloatArray]:
    started = time.perf_counter()
    boxes = call()
    return (time.perf_counter() - started) * 1000, boxes


def time_calls(calls: list[Callable[[], FloatArray]], repeats: int) -> Timed:
    """Each call once (its first run), then `repeats` times (their median); one warm-up first."""
    timed = Timed()
    if calls:
        calls[0]()  # the session's first run allocates and plans
    for call in calls:
        first_ms, boxes = _ms(call)
        timed.first_ms.append(first_ms)
        timed.found.append(boxes)
        timed.ms.append(statistics.median(_ms(call)[0] for _ in range(repeats)))
    return timed


def _detect(detector: Detector, image: U8Image, threshold: float) -> Callable[[], FloatArray]:
    return lambda: detector.detect(image, threshold).boxes


def _find(
    scanner: PrivacyScanner, frame: U8Image, horizon: float | None
) -> Callable[[], FloatArray]:
    def call() -> FloatArray:
        faces, plates = scanner.find(frame, horizon=horizon)
        # Faces first, then plates, tagged in a fifth column so agreement keeps them apart.
        tagged = [
            np.c_[d.boxes, np.full(len(d), k, np.float32)] for k, d in enumerate((faces, plates))
        ]
        return np.concatenate(tagged).astype(np.float32)

    return call


def measure(scanner: PrivacyScanner, inputs: Inputs, repeats: int) -> dict[str, Timed]:
    s = scanner.settings
    return {
        "face": time_calls(
            [_detect(scanner.face, i, s.face_threshold) for i, _ in inputs.faces], repeats
        ),
        "plate": time_calls(
            [_detect(scanner.plate, i, s.plate_threshold) for i, _ in inputs.plates], repeats
        ),
        "frame": time_calls([_find(scanner, f, inputs.horizon) for f in inputs.frames], repeats),
    }


# Scoring -------------------------------------------------------------------------------------


def recall(labelled: list[tuple[U8Image, FloatArray]], found: list[FloatArray]) -> float | None:
    """Share of labelled boxes that a detection overlaps at IoU >= MATCH_IOU."""
    labels = sum(len(boxes) for _, boxes in labelled)
    if not labels:
        return None
    matched = sum(
        int((iou_matrix(boxes, f).max(axis=1) >= MATCH_IOU).sum())
        for (_, boxes), f in zip(labelled, found, strict=True)
        if len(boxes) and len(f)
    )
    return matched / labels


def frame_agreement(reference: list[FloatArray], candidate: list[FloatArray]) -> float:
    """`agreement` per kind over the frames: faces and plates are never matched to each other."""
    per_kind = [
        ([r[r[:, 4] == k, :4] for r in reference], [c[c[:, 4] == k, :4] for c in candidate])
        for k in (0, 1)
    ]
    found = sum(sum(len(r) for r in ref) for ref, _ in per_kind)
    if not found:
        return 1.0
    return sum(agreement(ref, cand) * sum(len(r) for r in ref) for ref, cand in per_kind) / found


def summarise(
    timed: dict[str, Timed], reference: dict[str, Timed], inputs: Inputs
) -> dict[str, dict[str, object]]:
    """Median ms (first call and later calls), detections, agreement and recall per task."""
    labels = {"face": inputs.faces, "plate": inputs.plates}
    result: dict[str, dict[str, object]] = {}
    for task, t in timed.items():
        if not t.ms:
            continue
        entry: dict[str, object] = {
            "images": len(t.ms),
            "ms": round(statistics.median(t.ms), 2),
            "first_ms": round(statistics.median(t.first_ms), 2),
            "max_first_ms": round(max(t.first_ms), 1),
            "detections": sum(len(f) for f in t.found),
        }
        score = frame_agreement if task == "frame" else agreement
        entry["agreement"] = round(score(reference[task].found, t.found), 4)
        entry["agreement_reverse"] = round(score(t.found, reference[task].found), 4)
        if task in labels:
            entry["recall"] = recall(labels[task], t.found)
        result[task] = entry
    return result


# Run -----------------------------------------------------------------------------------------


def _configs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """`--configs` in its order, or every provider with every model choice; the CPU published
    models are the reference, so they run first, asked for or not."""
    if args.configs:
        pairs = [c.strip().lower().split("/", 1) for c in args.configs.split(",") if c.strip()]
        configs = [(p, v) for p, v in pairs]
    else:
        providers = [p.strip().lower() for p in args.providers.split(",") if p.strip()]
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        configs = [(p, v) for p in providers for v in variants]
    return [REFERENCE, *(c for c in configs if c != REFERENCE)]


def run_config(
    provider: str, variant: str, inputs: Inputs, args: argparse.Namespace
) -> tuple[dict[str, object], dict[str, Timed] | None]:
    """One provider and model choice: what it loaded, on which provider, and its timings."""
    config = f"{provider}/{variant}"
    started = time.perf_counter()
    try:
        scanner = load_scanner(provider, variant, ModelSettings())
    except ProviderUnavailableError as exc:
        return {"config": config, "unavailable": str(exc)}, None
    load_s = time.perf_counter() - started
    wanted = PROVIDER_ALIASES.get(provider.partition("+")[0], provider)
    actual = {d.task: d.provider for d in (scanner.face, scanner.plate)}
    entry: dict[str, object] = {
        "config": config,
        "models": scanner.model_versions,
        "providers": actual,
        "fell_back": any(p != wanted for p in actual.values()),
        "load_s": round(load_s, 2),
    }
    return entry, measure(scanner, inputs, args.repeats)


def run_bench(args: argparse.Namespace) -> dict[str, object]:
    ort.set_default_logger_severity(3)
    inputs = read_inputs(args)
    runs: list[dict[str, object]] = []
    reference: dict[str, Timed] | None = None
    for provider, variant in _configs(args):
        entry, timed = run_config(provider, variant, inputs, args)
        if timed is not None:
            reference = reference or timed  # the first run is the CPU published one
            entry["tasks"] = summarise(timed, reference, inputs)
        runs.append(entry)
        _speedups(runs)  # before printing: a run cut short by a time limit still shows them
        _print_run(entry)
    return {
        "onnxruntime": ort.__version__,
        "device": ort.get_device(),
        "available_providers": list(ort.get_available_providers()),
        "images": {"face": len(inputs.faces), "plate": len(inputs.plates)},
        "frames": len(inputs.frames),
        "horizon_row": None if inputs.horizon is None else round(inputs.horizon, 1),
        "repeats": args.repeats,
        "runs": runs,
    }


def _tasks(entry: dict[str, object]) -> dict[str, dict[str, object]]:
    tasks = entry.get("tasks", {})
    assert isinstance(tasks, dict)
    return tasks


def _speedups(runs: list[dict[str, object]]) -> None:
    """Each run's speed-up per task over the CPU run of the same model choice (`x_cpu`, once that
    has run) and over the CPU published models (`x_ref`, always run first)."""
    cpu = {
        str(r["config"]).split("/")[1]: _tasks(r)
        for r in runs
        if str(r["config"]).startswith("cpu/")
    }
    for run in runs:
        for key, base in (
            ("x_cpu", cpu.get(str(run["config"]).split("/")[1])),
            ("x_ref", cpu.get(REFERENCE[1])),
        ):
            for task, entry in _tasks(run).items():
                ms, base_ms = entry["ms"], (base or {}).get(task, {}).get("ms")
                if isinstance(ms, float) and isinstance(base_ms, float) and ms > 0:
                    entry[key] = round(base_ms / ms, 2)


# Report --------------------------------------------------------------------------------------


def _cell(entry: dict[str, object], key: str, spec: str) -> str:
    value = entry.get(key)
    return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def _print_run(run: dict[str, object]) -> None:
    if "unavailable" in run:
        print(f"{run['config']:<16} unavailable: {run['unavailable']}", flush=True)
        return
    fell = " FELL BACK TO ANOTHER PROVIDER" if run["fell_back"] else ""
    print(f"{run['config']:<16} models {run['models']}, load {run['load_s']} s{fell}")
    for task, e in _tasks(run).items():
        print(
            f"{'':<16} {task:<6} {e['images']:>3} {_cell(e, 'ms', '8.1f')} "
            f"{_cell(e, 'first_ms', '8.1f')} {_cell(e, 'max_first_ms', '8.1f')} "
            f"{_cell(e, 'x_cpu', '6.2f')} {_cell(e, 'x_ref', '6.2f')} {_cell(e, 'agreement', '6.3f')} "
            f"{_cell(e, 'agreement_reverse', '6.3f')} {_cell(e, 'recall', '6.3f')} "
            f"{e['detections']:>5}",
            flush=True,
        )


def print_summary(report: dict[str, object]) -> None:
    available = report["available_providers"]
    assert isinstance(available, list)
    print(
        f"onnxruntime {report['onnxruntime']} ({report['device']}); available: {', '.join(available)}"
    )
    print(
        f"images: {report['images']}, frames: {report['frames']} (horizon row "
        f"{report['horizon_row']}), {report['repeats']} timed calls each after the first"
    )
    header = f"{'config':<16} {'task':<6} {'n':>3} {'ms':>8} {'first':>8} {'max 1st':>8} "
    print(header + f"{'x CPU':>6} {'x ref':>6} {'agree':>6} {'rev':>6} {'recall':>6} {'dets':>5}")
    runs = report["runs"]
    assert isinstance(runs, list)
    for run in runs:
        _print_run(run)
    print(
        "ms: median per image (face, plate: the detector alone; frame: PrivacyScanner.find) after "
        "its first call; first: median first call per image (a new input shape); x CPU: speed-up "
        "over the CPU run of the same models; x ref: over the CPU published models; agree: share of the CPU published models' detections "
        "found (IoU >= 0.5); rev: the other way round; recall: labels found at IoU >= 0.3"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", default="cpu,cuda", help="comma-separated, CPU first")
    parser.add_argument("--variants", default="published,prepared")
    parser.add_argument(
        "--configs", help="PROVIDER/VARIANT,... in this order, instead of --providers x --variants"
    )
    parser.add_argument("--plates", type=Path, default=DATA / "plates" / "openalpr-eu")
    parser.add_argument("--faces", type=Path, default=DATA / "faces" / "rbnr-set1")
    parser.add_argument(
        "--frames", type=Path, help="folder of whole frames for PrivacyScanner.find"
    )
    parser.add_argument("--limit", type=int, default=30, help="labelled images per set")
    parser.add_argument("--frame-limit", type=int, default=8, help="frames from --frames")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per image after the first"
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    report = run_bench(args)
    print_summary(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
