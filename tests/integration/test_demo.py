"""`roadswarm demo` end to end: the real command, its Celery worker, its store and its viewer."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Long enough that a drive keeps keyframes after the demo's 50 m trims at both ends.
DEMO_ARGS = ["--drivers", "2", "--minutes", "0.5", "--resolution", "320x180"]
FRAMES_PER_DRIVE = int(0.5 * 60 * 30)


def demo_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "roadswarm",
        "demo",
        "--workdir",
        str(workdir),
        *DEMO_ARGS,
        *extra,
    ]


def demo(workdir: Path, *extra: str) -> dict[str, Any]:
    command = demo_command(workdir, *extra)
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def check_summary(summary: dict[str, Any], workdir: Path) -> None:
    totals = summary["totals"]
    assert totals["drives"] == 2
    assert totals["frames"] == 2 * FRAMES_PER_DRIVE
    assert totals["segments_covered"] >= 1
    imagery = summary["imagery"]
    assert imagery["frames_posed"] >= 0.9 * totals["frames_matched"]
    assert totals["tiles_built"] == imagery["tiles"] > 0
    assert imagery["tiles_by_zoom"]["14"] >= 1 and imagery["pmtiles"]
    layers = summary["layers"]
    assert layers["tiles"]["coverage"] > 0 and layers["tiles"]["freshness"] > 0
    assert set(layers["pmtiles"]) == {"coverage", "freshness"}
    rewards = totals["rewards"]
    # The epoch pays out its whole pool to the drivers whose frames were accepted and matched.
    assert rewards["frames"] == totals["frames_matched"]
    if rewards["frames"]:
        assert sum(int(a) for a in rewards["allocations"].values()) == int(
            rewards["pool"]["allocated"]
        )
    assert all(rewards["proofs_verified"].values())
    assert totals["keyframes"] == sum(d["keyframes"] for d in summary["drives"])
    # Every keyframe went through upload into the catalog exactly once and was judged.
    assert totals["keyframes"] > 0
    assert totals["keyframes_uploaded"] == totals["keyframes"]
    frames = summary["catalog"]["frames"]
    assert sum(frames.values()) == totals["keyframes"]
    assert frames["received"] == frames["validated"] == frames["failed"] == 0
    assert totals["frames_accepted"] + totals["frames_quarantined"] == totals["keyframes"]
    # Matched onto the roads the virtual drivers really drove (the simulator's segment ids).
    assert totals["frames_matched"] >= 0.9 * totals["frames_accepted"]
    driven = {segment for d in summary["drives"] for segment in d["segment_ids"]}
    assert set(summary["catalog"]["matched_segment_ids"]) <= driven
    for drive in summary["drives"]:
        assert (workdir / "spools" / drive["device"] / "spool.sqlite3").is_file()
    devices = {d["device"] for d in summary["drives"]}
    assert devices == {"demo-driver-1", "demo-driver-2"}
    for drive in summary["drives"]:
        for key in drive["objects"].values():
            assert (workdir / "objects" / key).is_file(), key


def test_demo_runs_drives_on_an_embedded_celery_worker(tmp_path: Path) -> None:
    """With no services, the demo renders every driver's drive through Celery into the local store."""
    summary = demo(tmp_path, "--no-serve", "--json")
    check_summary(summary, tmp_path)
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count("<polyline") > summary["world"]["segments"]  # roads plus one track per drive
    assert "demo-driver-2" in page
    assert list((tmp_path / "logs").glob("demo-sim-*.log")), "the worker wrote no log"


def test_demo_uses_a_real_redis_broker_when_given(tmp_path: Path) -> None:
    """`--broker redis://...` sends the work through that broker instead of an embedded one."""
    if not redis_reachable():
        if os.environ.get("ROADSWARM_REQUIRE_SERVICES"):
            pytest.fail("Redis on 127.0.0.1:6379 is required (ROADSWARM_REQUIRE_SERVICES is set)")
        pytest.skip("no Redis on 127.0.0.1:6379")
    summary = demo(tmp_path, "--no-serve", "--json", "--broker", "redis://127.0.0.1:6379/13")
    check_summary(summary, tmp_path)
    assert not (tmp_path / "redis").exists(), "an embedded Redis was started despite --broker"


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_demo_serves_the_map_until_interrupted(tmp_path: Path) -> None:
    """The consumer API and its MapLibre viewer answer on loopback over the demo's catalog and
    store: the page, the layers' TileJSON, a stored tile, the frames with the viewer's key, the
    run's summary page; paths outside them are refused; Ctrl-C stops it."""
    command = demo_command(tmp_path, "--port", "0")
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            url, key = wait_for_viewer(process)
            status, page = fetch(f"{url}/?key={key}")
            assert status == 200 and b"maplibre" in page.lower()
            status, body = fetch(f"{url}/tiles/imagery/tilejson.json")
            assert status == 200 and json.loads(body)["tilejson"] == "3.0.0"
            bbox = ",".join(str(v) for v in json.loads(body)["bounds"])
            z, x, y = next(iter(stored_tiles(tmp_path / "objects", "imagery")))
            status, tile = fetch(f"{url}/tiles/imagery/{z}/{x}/{y}.webp")
            assert status == 200 and tile[:4] == b"RIFF"
            status, body = fetch(f"{url}/v1/frames.geojson?key={key}&bbox={bbox}")
            assert status == 200 and json.loads(body)["features"]
            status, page = fetch(f"{url}/demo/")
            assert status == 200 and b"roadswarm demo" in page
            assert fetch(f"{url}/demo/..%2Fworld%2Fworld.json")[0] == 404
            assert fetch(f"{url}/tiles/imagery/..%2F..%2Fworld/1/1.webp")[0] in {400, 404, 422}
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()


def stored_tiles(objects: Path, layer: str) -> list[tuple[str, str, str]]:
    """(z, x, y) of the layer's tiles in the demo's local store."""
    found = sorted((objects / "tiles" / layer).glob("*/*/*.webp"))
    return [(p.parent.parent.name, p.parent.name, p.stem) for p in found]


def wait_for_viewer(process: subprocess.Popen[str], timeout_s: float = 600) -> tuple[str, str]:
    """Read stderr until the demo says where the viewer is: its URL and the viewer's key."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            pytest.fail(f"the demo exited with {process.returncode} before serving")
        match = re.search(r"viewer on (http://127\.0\.0\.1:\d+)/\?key=(\S+)", line)
        if match:
            return match.group(1), match.group(2)
    pytest.fail("the demo did not start its viewer in time")
