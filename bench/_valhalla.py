"""Valhalla's Meili as the map-matching anchor: the standalone executables of the pyvalhalla wheel
(its Python module needs 3.12, the executables do not), tiles built from the same OSM extract, and
`valhalla_service` on loopback answering `trace_attributes`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

WHEEL = "pyvalhalla==3.9.1"
PIP_DOWNLOAD = [
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--platform",
    "manylinux_2_28_x86_64",
    WHEEL,
]


def ensure_valhalla(cache: Path) -> Path:
    """The folder of the wheel's package (`bin/`, `valhalla_build_config.py`), fetched once."""
    package = cache / "wheel" / "valhalla"
    if (package / "bin" / "valhalla_service").exists():
        return package
    cache.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", *PIP_DOWNLOAD, "--dest", str(cache)]
    subprocess.run(pip, check=True, capture_output=True)
    wheel = next(cache.glob("pyvalhalla-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache / "wheel")
    for exe in (package / "bin").iterdir():
        exe.chmod(0o755)
    return package


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_tiles(package: Path, osm: Path, workdir: Path) -> Path:
    """Routing tiles of `osm` in `workdir`, and the service's configuration file."""
    workdir.mkdir(parents=True, exist_ok=True)
    tiles = workdir / "tiles"
    script = package / "valhalla_build_config.py"
    args = ["--mjolnir-tile-dir", str(tiles), "--mjolnir-tile-extract", ""]
    args += ["--mjolnir-timezone", "", "--mjolnir-admin", "", "--mjolnir-concurrency", "1"]
    made = subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    config: dict[str, Any] = json.loads(made.stdout)
    service = config["httpd"]["service"]
    service["listen"] = f"tcp://127.0.0.1:{_free_port()}"
    # Every inter-process socket goes inside the work folder, so two runs never meet.
    service["loopback"] = f"ipc://{workdir}/loopback"
    service["interrupt"] = f"ipc://{workdir}/interrupt"
    for section in ("loki", "thor", "odin", "meili"):
        if "service" in config.get(section, {}):
            config[section]["service"]["proxy"] = f"ipc://{workdir}/{section}"
    path = workdir / "valhalla.json"
    path.write_text(json.dumps(config, indent=1))
    if not tiles.exists():
        log = workdir / "build_tiles.log"
        with log.open("w") as out:
            exe = package / "bin" / "valhalla_build_tiles"
            subprocess.run(
                [str(exe), "-c", str(path), str(osm)], check=True, stdout=out, stderr=out
            )
    return path


class MeiliService:
    """`valhalla_service` with one worker thread on loopback, for as long as the block runs."""

    def __init__(self, package: Path, config: Path) -> None:
        self.package, self.config = package, config
        listen = json.loads(config.read_text())["httpd"]["service"]["listen"]
        self.url = "http://" + listen.removeprefix("tcp://")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MeiliService:
        exe = self.package / "bin" / "valhalla_service"
        log = (self.config.parent / "service.log").open("wb")
        self.process = subprocess.Popen([str(exe), str(self.config), "1"], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        msg = f"valhalla_service did not answer on {self.url}: see {log.name}"
        raise RuntimeError(msg)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.kill()  # it ignores SIGTERM, and holds no state worth a clean exit
            self.process.wait(timeout=10)

    def trace_attributes(self, request: dict[str, Any]) -> dict[str, Any]:
        """Meili's answer to one `trace_attributes` request (an error answer is returned too)."""
        data = json.dumps(request).encode()
        post = urllib.request.Request(
            f"{self.url}/trace_attributes", data, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(post, timeout=120) as answer:
                result: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            result = json.loads(error.read() or b"{}")
        return result
