"""The real `roadswarm ingest` and `roadswarm ops` commands against a catalog on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ingest.catalog import utcnow
from ingest.commit import commit_batch
from ingest.db import Catalog
from ingest.devices import register_device
from ingest.protocol import Registration, frame_object_key
from ingest.storage import LocalObjectStore
from ingest.validate import IngestContext, validate_frames
from tests.ingest_helpers import FakeDevice, frame_id, make_jpeg

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadswarm", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _json(env: dict[str, str], *args: str) -> Any:
    result = _run(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _populated(tmp_path: Path) -> tuple[dict[str, str], FakeDevice, str]:
    """A migrated catalog (through the CLI) with one accepted-so-far and one quarantined frame."""
    env = {
        "ROADSWARM_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "ROADSWARM_STORE_DIR": str(tmp_path / "store"),
        "ROADSWARM_BROKER_URL": "",
    }
    assert _json(env, "ingest", "migrate") == {"migrated": True}
    catalog = Catalog.connect(env["ROADSWARM_DATABASE_URL"], migrate_schema=False)
    store = LocalObjectStore(tmp_path / "store")
    device = FakeDevice()
    info, _ = register_device(catalog, Registration(**device.registration()), now=utcnow())
    good, lost = make_jpeg(1), make_jpeg(2)
    for data in (good, lost):
        store.put_bytes(frame_object_key(device.device_id, frame_id(data)), data)
    signed = device.manifest(device.entries([good, lost]))
    ids = commit_batch(catalog, store, info, signed, utcnow()).new_frame_ids
    store.delete(frame_object_key(device.device_id, frame_id(lost)))
    validate_frames(IngestContext(catalog, store), ids)
    catalog.dispose()
    return env, device, frame_id(lost)


def test_ops_status_and_quarantine_commands(tmp_path: Path) -> None:
    """Status counts frames by state; the quarantine lists, shows and refuses a bad release."""
    env, device, lost = _populated(tmp_path)
    status = _json(env, "ops", "status")
    assert status["frames"]["validated"] == 1 and status["frames"]["quarantined"] == 1
    assert status["quarantined_by_reason"] == {"object_missing": 1}
    assert status["oldest_pending"]["state"] == "validated"
    assert status["queues"] is None  # no broker configured
    (entry,) = _json(env, "ops", "quarantine", "list")
    assert (entry["frame_id"], entry["reason"]) == (lost, "object_missing")
    shown = _json(env, "ops", "quarantine", "show", str(entry["id"]))
    assert shown["frame"]["object_key"] == frame_object_key(device.device_id, lost)
    refused = _run(env, "ops", "quarantine", "release", str(entry["id"]), "--by", "ops")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "upload it again" in refused.stderr
    missing = _run(env, "ops", "quarantine", "show", "999")
    assert missing.returncode == 1 and "no quarantine entry 999" in missing.stderr


def test_device_list_and_revoke(tmp_path: Path) -> None:
    """Operators see registered devices and can revoke one."""
    env, device, _ = _populated(tmp_path)
    (listed,) = _json(env, "ingest", "devices", "list")
    assert listed["device_id"] == device.device_id and listed["revoked_at"] is None
    revoked = _json(env, "ingest", "devices", "revoke", device.device_id)
    assert revoked["revoked_at"] is not None
    unknown = _run(env, "ingest", "devices", "revoke", "f" * 64)
    assert unknown.returncode == 1 and "no device" in unknown.stderr


def test_commands_say_what_to_configure(tmp_path: Path) -> None:
    """Without a catalog URL the command says which setting to give."""
    result = _run({"ROADSWARM_DATABASE_URL": ""}, "ops", "status")
    assert result.returncode == 1
    assert "ROADSWARM_DATABASE_URL" in result.stderr
