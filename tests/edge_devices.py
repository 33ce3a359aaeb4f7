"""A device with keyframes in its spool, the `edge upload` command for it, and a store that
counts what the API writes: shared by the upload and reliability suites."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from edge.identity import create_identity
from edge.spool import Spool
from ingest.storage import DEFAULT_CONTENT_TYPE, LocalObjectStore, StoredObject
from tests.edge_records import record_for

REPO_ROOT = Path(__file__).resolve().parents[1]


class CountingStore(LocalObjectStore):
    """The API's store, counting writes per key and optionally taking time for each, as a remote
    store would (so that kills land mid-upload)."""

    def __init__(self, root: Path, *, delay_s: float = 0.0) -> None:
        super().__init__(root)
        self.delay_s = delay_s
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store and count."""
        time.sleep(self.delay_s)
        stored = super().put_bytes(key, data, content_type=content_type)
        with self._lock:
            self.writes[key] += 1
        return stored


def device_with_frames(folder: Path, frames: list[bytes]) -> tuple[Path, Path]:
    """An identity and a spool holding `frames` as keyframes of one drive."""
    identity_dir, spool_dir = folder / "identity", folder / "spool"
    create_identity(identity_dir)
    with Spool(spool_dir) as spool:
        for index, data in enumerate(frames):
            spool.add(record_for(data, "drive", index), data)
    return identity_dir, spool_dir


def upload_command(api_url: str, identity_dir: Path, spool_dir: Path) -> list[str]:
    """`roadswarm edge upload --json` of that spool to that API."""
    return [
        sys.executable,
        "-m",
        "roadswarm",
        "edge",
        "upload",
        "--api",
        api_url,
        "--identity-dir",
        str(identity_dir),
        "--spool",
        str(spool_dir),
        "--json",
    ]


def run_command(
    command: list[str], *, env: dict[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run from the repository root, capturing output."""
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
    )
