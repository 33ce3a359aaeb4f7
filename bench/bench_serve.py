"""Cached tile throughput and latency of `roadswarm serve` beside nginx serving the same files.

1. `--tiles` imagery tiles (z18, lossless WebP of smooth texture with noise) are written through
   the TileStore into a local object store, so both servers read the very same files.
2. nginx (Debian's, installed if missing) serves the store's folder as static files on a loopback
   port with `--workers` worker processes; `roadswarm serve --workers` serves the API twice: with
   the layer public (no key: the tile path alone) and keyed (API key checked, a rate-limit token
   spent and the tile metered on every request: in each process's memory, with the SQLite catalog
   written once per block of tokens and once a second for the usage). After the keyed run the
   server is stopped and the usage in the catalog is compared with the tiles wrk received.
3. wrk (Debian's, installed if missing; 2 threads) requests the tiles round-robin, first for a
   3 s warm-up that fills each worker's tile cache, then for `--duration-s` at 50 and at 200
   connections; requests/s and p50/p99 latency, median of
   `--repeats` runs, and our throughput as a fraction of nginx's.
   Target: >= 50 % of nginx's requests/s and p99 <= 50 ms at 200 connections.

The load generator shares the machine with the servers (on a 2-core machine, wrk takes about a
core): the figures are relative, taken side by side in one run.

    python -m bench.bench_serve [--tiles 400] [--duration-s 8] [--repeats 3] [--workers 2]
        [--json-out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench._common import verdict
from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.keys import authenticate, create_key
from mapbuilder.serve.usage import usage_of
from mapbuilder.tiles.mercator import Tile
from mapbuilder.tiles.store import TileStore
from roadswarm.api_server import free_port

CONNECTIONS = (50, 200)
THROUGHPUT_TARGET = 0.5
WARM_UP_S = 3
P99_TARGET_MS = 50.0
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("TILE_LIST")) do paths[#paths + 1] = line end
local key = os.getenv("API_KEY")
if key ~= nil and key ~= "" then wrk.headers["X-API-Key"] = key end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""
NGINX_CONF = """
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types {{ image/webp webp; }}
  server {{
    listen 127.0.0.1:{port};
    root {store};
    location /tiles/ {{ add_header Cache-Control "public, max-age=300"; }}
  }}
}}
"""


def ensure_tools() -> None:
    """nginx and wrk from Debian, installed when missing."""
    missing = [
        name
        for name in ("nginx", "wrk")
        if not shutil.which(name) and not Path(f"/usr/sbin/{name}").exists()
    ]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            check=True,
            capture_output=True,
            env=env,
        )


def texture(seed: int) -> bytes:
    """A 256 px lossless WebP of smooth blobs and noise (a few tens of KiB, like road imagery)."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((8, 8, 3)) * 200).astype(np.uint8)
    image = np.asarray(
        Image.fromarray(coarse).resize((256, 256), Image.Resampling.BICUBIC), np.int16
    )
    noisy = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def write_tiles(store: LocalObjectStore, count: int) -> tuple[list[str], int]:
    """`count` z18 imagery tiles in a square; their URL paths and median size in bytes."""
    tiles = TileStore(store)
    side = int(np.ceil(np.sqrt(count)))
    paths, sizes = [], []
    for i in range(count):
        tile: Tile = (18, 149_000 + i % side, 75_000 + i // side)
        data = texture(i)
        tiles.put("imagery", tile, data)
        paths.append(f"/tiles/imagery/{tile[0]}/{tile[1]}/{tile[2]}.webp")
        sizes.append(len(data))
    return paths, int(statistics.median(sizes))


def _wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server at {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"the server at {url} did not start")


@contextmanager
def running(command: list[str], url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server process for the duration of the block."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_http(url, process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def nginx(root: Path, store: Path, workers: int) -> tuple[list[str], str]:
    """The nginx command serving `store` and its URL."""
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, root=root, port=port, store=store))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return [
        binary,
        "-c",
        str(conf),
        "-p",
        str(root),
        "-g",
        "daemon off;",
    ], f"http://127.0.0.1:{port}"


def roadswarm(workers: int) -> tuple[list[str], str]:
    """The `roadswarm serve` command and its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "roadswarm",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return command, f"http://127.0.0.1:{port}"


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, connections: int, duration_s: int, env: dict[str, str]) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, and how many answers were not 2xx/3xx."""
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        env["WRK_SCRIPT"],
        url,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "bad": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(map(int, errors.groups()))) if errors else 0.0,
    }


def check_serves(url: str, path: str, store: LocalObjectStore, env: dict[str, str]) -> None:
    """Stop unless the server answers a tile with the stored bytes (a 403 is fast but no tile)."""
    answer = httpx.get(url + path, headers={"X-API-Key": env.get("API_KEY", "")})
    if answer.status_code != 200 or answer.content != store.get_bytes(path.lstrip("/")):
        sys.exit(f"{url}{path} answered {answer.status_code}, not the stored tile")


def measure(
    url: str, args: argparse.Namespace, env: dict[str, str]
) -> tuple[dict[str, dict[str, object]], int]:
    """Median figures of `args.repeats` runs at each connection count, and how many answers wrk
    received in all (warm-up included)."""
    # Warm-up, not counted: every tile once into each worker's cache ("cached tile requests").
    answered = wrk(url, CONNECTIONS[0], WARM_UP_S, env)["requests"]
    results: dict[str, dict[str, object]] = {}
    for connections in CONNECTIONS:
        runs = [wrk(url, connections, args.duration_s, env) for _ in range(args.repeats)]
        answered += sum(r["requests"] for r in runs)
        results[str(connections)] = {
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "rps_runs": [round(r["rps"], 1) for r in runs],
            "non_2xx": sum(r["bad"] for r in runs),
            "socket_errors": sum(r["socket_errors"] for r in runs),
        }
        if results[str(connections)]["non_2xx"]:
            sys.exit(f"{url} answered errors under load: {results[str(connections)]}")
    return results, int(answered)


def run(args: argparse.Namespace, root: Path) -> dict[str, object]:
    """Write the tiles, then measure nginx, the public API and the keyed API in turn."""
    store = LocalObjectStore(root / "store")
    paths, size = write_tiles(store, args.tiles)
    (root / "tiles.txt").write_text("\n".join(paths) + "\n")
    (root / "paths.lua").write_text(WRK_SCRIPT)
    database = f"sqlite:///{root / 'catalog.sqlite3'}"
    catalog = Catalog.connect(database)
    key = create_key(catalog, "bench", rate_per_s=1e9, burst=1_000_000_000)[1]
    catalog.dispose()
    base = {
        **os.environ,
        "TILE_LIST": str(root / "tiles.txt"),
        "WRK_SCRIPT": str(root / "paths.lua"),
    }
    served = {**base, "ROADSWARM_DATABASE_URL": database, "ROADSWARM_STORE_DIR": str(store.root)}
    report: dict[str, object] = {
        "tiles": len(paths),
        "median_tile_bytes": size,
        "workers": args.workers,
        "cores": os.cpu_count(),
    }
    root.chmod(0o755)  # nginx's workers run as another user: let them reach the store
    command, url = nginx(root, store.root, args.workers)
    with running(command, url):
        check_serves(url, paths[0], store, base)
        report["nginx"], _ = measure(url, args, base)
    command, url = roadswarm(args.workers)
    with running(command, url, {**served, "ROADSWARM_SERVE_PUBLIC_LAYERS": "imagery"}):
        check_serves(url, paths[0], store, base)
        report["roadswarm_public"], _ = measure(url, args, base)
    command, url = roadswarm(args.workers)
    with running(command, url, served):
        report["roadswarm_keyed"], answered = measure(url, args, {**base, "API_KEY": key})
    report["keyed_metering"] = metering(database, key, answered)
    return report


def metering(database: str, key: str, answered: int) -> dict[str, int]:
    """Tiles wrk received against tiles the stopped server metered: none may be missing (a few
    more are fine: requests still in flight when wrk stopped were served but not counted)."""
    catalog = Catalog.connect(database, migrate_schema=False)
    try:
        metered = sum(day.tiles for day in usage_of(catalog, authenticate(catalog, key).key_id))
    finally:
        catalog.dispose()
    if metered < answered:
        sys.exit(f"usage lost: wrk received {answered} keyed tiles, {metered} were metered")
    return {"answered": answered, "metered": metered}


def summary(report: dict[str, object]) -> None:
    """One line per server and connection count, with the ratio to nginx and the verdicts."""
    nginx_figures = report["nginx"]
    assert isinstance(nginx_figures, dict)
    for name in ("nginx", "roadswarm_public", "roadswarm_keyed"):
        figures = report[name]
        assert isinstance(figures, dict)
        for connections, f in figures.items():
            ratio = f["rps"] / nginx_figures[connections]["rps"]
            line = f"{name:17} c={connections:>3}: {f['rps']:8.0f} req/s  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  ratio {ratio:.2f}"
            if name != "nginx" and connections == "200":
                line += f"  (>= {THROUGHPUT_TARGET}: {verdict(ratio >= THROUGHPUT_TARGET)}, p99 <= {P99_TARGET_MS:g} ms: {verdict(f['p99_ms'] <= P99_TARGET_MS)})"
            print(line)
    metered = report["keyed_metering"]
    assert isinstance(metered, dict)
    print(
        f"keyed metering: {metered['answered']} tiles received by wrk, {metered['metered']} metered"
    )


def main() -> None:
    """Parse options, run, print the JSON report and the summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiles", type=int, default=400)
    parser.add_argument("--duration-s", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        report = run(args, Path(tmp))
    print(json.dumps(report, indent=2))
    summary(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
