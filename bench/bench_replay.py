"""Near-duplicates from other devices: does the pixel comparison tell replays from second captures?

1. Real photos (`--data`, every JPEG under it; default ../shared/data/privacy): each is framed as
   a capture (tests/replay_edits.py). Its replays (re-encoded, resized, cropped, brightened, EXIF
   stripped) should reach `replay_min_agreement`; its second captures (zoomed 2-5 % and shifted,
   other exposure and noise) should not. Per edit: how many stay within `near_duplicate_bits` of
   the perceptual hash (only those are ever compared) and the spread of the agreement.
2. Simulator (`--world`, a world folder such as a demo's `world/`): frames rendered at one place
   and 0.25-2 m further on or 0.5-3 m to the side, at `--size`.
3. Cost: milliseconds per comparison and per candidate thumbnail (decode included).

    python -m bench.bench_replay [--data DIR] [--every 1] [--world DIR] [--size 1280x720]
        [--places 15] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ingest.imagecheck import ImageFacts, hamming, inspect_image
from ingest.pixelmatch import agreement
from ingest.settings import ValidationSettings
from roadswarm.sim.camera import Calibration, Pose
from roadswarm.sim.render import FrameRenderer
from roadswarm.sim.world import World
from tests.replay_edits import SMALL_OK, capture, replays, rescaled_crops, second_captures

SIM_OFFSETS_M = {
    "same place": (0.0, 0.0),
    "0.25 m on": (0.25, 0.0),
    "0.5 m on": (0.5, 0.0),
    "1 m on": (1.0, 0.0),
    "2 m on": (2.0, 0.0),
    "0.5 m aside": (0.0, 0.5),
    "1 m aside": (0.0, 1.0),
    "3 m aside": (0.0, 3.0),
}
Row = dict[str, object]


def facts(data: bytes) -> ImageFacts:
    """What validation learns of a frame (hash and thumbnail)."""
    found = inspect_image(data, SMALL_OK)
    assert isinstance(found, ImageFacts), found
    return found


def compare(group: str, edit: str, first: ImageFacts, data: bytes) -> Row:
    """One pair: hash distance and pixel agreement."""
    second = facts(data)
    bits = hamming(first.phash, second.phash)
    score = agreement(first.thumbnail, second.thumbnail)
    return {"group": group, "edit": edit, "bits": bits, "agreement": round(score, 4)}


def photo_rows(data_dir: Path, every: int) -> list[Row]:
    """Every edit of every `every`-th photo under `data_dir`."""
    photos = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    rows: list[Row] = []
    for seed, path in enumerate(photos[::every]):
        picture = Image.open(path)
        frame = capture(picture, seed=seed)
        first = facts(frame)
        groups = {
            "replay": replays(frame),
            "rescaled crop": rescaled_crops(frame),
            "second capture": second_captures(picture, seed),
        }
        for group, edits in groups.items():
            rows.extend(compare(group, edit, first, data) for edit, data in edits.items())
    return rows


def sim_rows(world_dir: Path, size: tuple[int, int], places: int) -> list[Row]:
    """Frames rendered at `places` points of the world's roads and at each offset from them."""
    world = World.load(world_dir)
    renderer = FrameRenderer(world.ortho, Calibration(width_px=size[0], height_px=size[1]), [])
    rng = np.random.default_rng(7)
    roads = [r for r in world.roads if _length(r.xy[0], r.xy[1]) >= 40.0]
    rows: list[Row] = []
    for index in rng.permutation(len(roads))[:places]:
        (x0, y0), (x1, y1) = roads[index].xy[0], roads[index].xy[1]
        length = _length((x0, y0), (x1, y1))
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        along = rng.uniform(10.0, length - 10.0)
        # The right-hand lane, heading along the road.
        x, y = x0 + ux * along + uy * 1.5, y0 + uy * along - ux * 1.5
        heading = math.degrees(math.atan2(ux, uy))
        first = facts(_jpeg(renderer.render(Pose(x, y, heading))[0], 90))
        for name, (on, aside) in SIM_OFFSETS_M.items():
            pose = Pose(x + ux * on + uy * aside, y + uy * on - ux * aside, heading)
            rows.append(compare("sim", name, first, _jpeg(renderer.render(pose)[0], 85)))
    return rows


def _length(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def _jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buffer.tobytes())


def summarise(rows: list[Row], settings: ValidationSettings) -> list[Row]:
    """Per group and edit: count, within the hash filter, agreement spread, and how many count as
    replays (all, and among those the hash filter passes)."""
    by_edit: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        by_edit[(str(row["group"]), str(row["edit"]))].append(row)
    table = []
    for (group, edit), found in by_edit.items():
        scores = sorted(float(str(r["agreement"])) for r in found)
        near = [r for r in found if int(str(r["bits"])) <= settings.near_duplicate_bits]
        limit = settings.replay_min_agreement
        table.append(
            {
                "group": group,
                "edit": edit,
                "n": len(found),
                "hash_near": len(near),
                "min": scores[0],
                "p5": round(float(np.percentile(scores, 5)), 4),
                "median": round(statistics.median(scores), 4),
                "p95": round(float(np.percentile(scores, 95)), 4),
                "max": scores[-1],
                "replay_verdicts": sum(s >= limit for s in scores),
                "replay_verdicts_hash_near": sum(float(str(r["agreement"])) >= limit for r in near),
            }
        )
    return table


def timing(data_dir: Path) -> dict[str, float]:
    """Milliseconds to read a candidate's thumbnail from JPEG bytes and to compare two frames."""
    path = next(p for p in sorted(data_dir.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg"))
    frame = capture(Image.open(path).resize((1920, 1080)))
    started = time.perf_counter()
    for _ in range(20):
        first = facts(frame)
    decode_ms = (time.perf_counter() - started) / 20 * 1000
    second = facts(replays(frame)["JPEG q70"])
    started = time.perf_counter()
    for _ in range(20):
        agreement(first.thumbnail, second.thumbnail)
    compare_ms = (time.perf_counter() - started) / 20 * 1000
    return {"inspect_1651x929_ms": round(decode_ms, 2), "agreement_ms": round(compare_ms, 2)}


def print_summary(report: dict[str, object]) -> None:
    """One line per group and edit."""
    table = report["table"]
    assert isinstance(table, list)
    print(f"replay_min_agreement {report['replay_min_agreement']}, timing {report['timing']}")
    head = "group           edit                                   n  near   min    p5   med   p95   max  replay(near)"
    print(head)
    for r in table:
        print(
            f"{r['group']:15} {r['edit']:36} {r['n']:4} {r['hash_near']:4} {r['min']:6.3f}"
            f"{r['p5']:6.3f}{r['median']:6.3f}{r['p95']:6.3f}{r['max']:6.3f}"
            f"  {r['replay_verdicts']}({r['replay_verdicts_hash_near']})"
        )


def main() -> None:
    """Parse the options, measure, print and write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "privacy"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--every", type=int, default=1, help="use every N-th photo")
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--places", type=int, default=15)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"no photos at {args.data}: pass --data with a folder of JPEG street photos")
    settings = ValidationSettings()
    rows = photo_rows(args.data, args.every)
    if args.world is not None:
        width, height = (int(v) for v in args.size.lower().split("x"))
        rows += sim_rows(args.world, (width, height), args.places)
    report: dict[str, object] = {
        "replay_min_agreement": settings.replay_min_agreement,
        "timing": timing(args.data),
        "table": summarise(rows, settings),
    }
    print_summary(report)
    if args.json_out:
        args.json_out.write_text(json.dumps({**report, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
