"""Soak: simulated drivers stream into the full stack for `--minutes`, then the queues drain.

1. `--drivers` dashcams each drive simulated routes of `--route-minutes` (640x360, one seed per
   route, rendered once into `--workdir`) through a 3 x 3 block grid world, one after another,
   for `--minutes`, in real time (`--speedup` streams faster, as a device catching up).
2. Every `--batch-s` each driver uploads the keyframes captured since its last batch with the
   edge's client (tickets, uploads, signed commit) to the ingest API (uvicorn on loopback) over
   a fresh PostgreSQL catalog; one real Celery worker (`--concurrency` processes) on every
   pipeline queue and a real beat, on Redis database 15 (flushed).
3. Sampled every 0.5 s: each queue's depth (LLEN, and kombu's unacked hash), frames per state,
   and each z21 imagery tile's builds. Once the drivers stop, the run waits (at most
   `--drain-s`) until every queue is empty and nothing is outstanding in the catalog.

Figures: frames/s committed over the load window, frames/s reaching a terminal state (accepted
or quarantined) over the load window, end to end (load start to drained); commit-to-accepted and
upload-to-tile latency (tests/reliability/soak_watch.py says how it is measured); the depth of
every queue over time; task runs and seconds per task; how busy the machine's cores were. There
is no external anchor: the stack's sustained rate is the figure.

    python -m bench.bench_soak [--minutes 3] [--drivers 3] [--route-minutes 1.5] [--speedup 1]
        [--batch-s 2] [--concurrency 2] [--drain-s 900] [--workdir DIR] [--json-out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench._common import run_and_report
from bench.bench_ingest import cpu_ticks
from roadswarm.sim.world import World, build_world
from tests.osm_fixtures import write_grid_osm
from tests.reliability.soak import SoakPlan, run_soak
from tests.reliability.soak_drivers import simulate_routes
from tests.reliability.soak_report import depth_table, figures


def run_bench(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """Render the routes (once), run the soak, and return its figures with the depth table."""
    world_dir = workdir / "world"
    if world_dir.exists():
        world = World.load(world_dir)
    else:
        world = build_world(write_grid_osm(workdir / "grid.osm.pbf"), world_dir, seed=3)
    routes = simulate_routes(
        world,
        workdir / "routes",
        drivers=args.drivers,
        minutes=args.minutes,
        route_minutes=args.route_minutes,
    )
    plan = SoakPlan(
        drivers=args.drivers,
        speedup=args.speedup,
        batch_s=args.batch_s,
        drain_s=args.drain_s,
        concurrency=args.concurrency,
    )
    busy_before = cpu_ticks()
    run = run_soak(plan, world, routes, workdir / "run")
    busy_after = cpu_ticks()
    found = figures(run)
    found["machine_busy"] = round(
        (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]), 2
    )
    found["depth_table"] = depth_table(run.samples, rows=24).splitlines()
    return found


def print_summary(report: dict[str, object]) -> None:
    """The headline figures and the queue depth table."""
    table = report["depth_table"]
    assert isinstance(table, list)
    print("\n".join(str(line) for line in table))
    keys = ("committed_fps", "terminal_fps_during_load", "end_to_end_fps", "drained_after_load_s")
    print(", ".join(f"{key} {report[key]}" for key in keys))
    print(
        f"upload->accepted {report['upload_to_accepted_s']}, upload->tile {report['upload_to_tile_s']}"
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--drivers", type=int, default=3)
    parser.add_argument("--route-minutes", type=float, default=1.5)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--batch-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--drain-s", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    run_and_report(parser.parse_args(), "bench-soak-", run_bench, print_summary)


if __name__ == "__main__":
    main()
