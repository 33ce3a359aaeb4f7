"""The edge app as a dashcam runs it, with only `roadswarm[edge]` installed (the server's
libraries hidden from the process): it processes a drive and uploads it, and the commands it
cannot run say what to install instead of failing with a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from edge.identity import create_identity
from ingest.catalog import Frame
from tests.edge_devices import run_command
from tests.edge_only import edge_only_command, server_only_modules
from tests.ingest_helpers import Harness
from tests.integration.edge_drive import process_args, records


def test_the_server_libraries_are_really_hidden() -> None:
    """The hiding covers the libraries a device lacks (else the other tests prove nothing)."""
    assert {"celery", "sqlalchemy", "fastapi", "uvicorn", "scipy", "minio"} <= server_only_modules()
    hidden = run_command(edge_only_command("ingest", "serve"))
    assert hidden.returncode == 2, hidden.stderr
    assert "needs" in hidden.stderr and "pip install 'roadswarm[server]'" in hidden.stderr
    assert "Traceback" not in hidden.stderr
    listing = run_command(edge_only_command("--help"))
    assert listing.returncode == 0, listing.stderr
    assert "edge" in listing.stdout and "unavailable here" in listing.stdout


def test_a_device_processes_and_uploads_a_drive(
    short_drive: Path, processed_short_drive: Path, api: Harness, tmp_path: Path
) -> None:
    """`edge process`, `edge upload` and `edge status` work without the server's libraries and
    give what they give with them."""
    spool, identity = tmp_path / "spool", tmp_path / "identity"
    processed = run_command(edge_only_command(*process_args(short_drive, spool)), timeout_s=600)
    assert processed.returncode == 0, processed.stderr
    assert records(spool) == records(processed_short_drive)
    create_identity(identity)
    upload = ["edge", "upload", "--api", api.url, "--identity-dir", str(identity)]
    uploaded = run_command(edge_only_command(*upload, "--spool", str(spool), "--json"))
    assert uploaded.returncode == 0, uploaded.stderr
    with api.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Frame)) == len(records(spool))
    status = run_command(edge_only_command("edge", "status", "--spool", str(spool), "--json"))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["keyframes"]["committed"] == len(records(spool))
