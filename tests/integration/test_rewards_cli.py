"""The rewards and ledger commands on a SQLite catalog: operator key, close, proof, offline proof
check, ledger verify (the last one as a real subprocess), and their refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.catalog import utcnow
from ingest.db import Catalog
from rewards.epochs import Epoch
from roadswarm.cli import main
from tests.rewards_helpers import EPOCH, seed_catalog, week

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A seeded catalog and rewards folders in tmp_path, named by environment variables."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    catalog = Catalog.connect(url)
    seed_catalog(catalog, week())
    catalog.dispose()
    values = {
        "ROADSWARM_DATABASE_URL": url,
        "ROADSWARM_REWARDS_OPERATOR_KEY_DIR": str(tmp_path / "operator"),
        "ROADSWARM_REWARDS_OUTPUT_DIR": str(tmp_path / "charts"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    """Run the CLI in this process; its JSON output."""
    main([*argv, "--json"])
    parsed: dict[str, object] = json.loads(capsys.readouterr().out)
    return parsed


def test_close_prove_and_verify_from_the_command_line(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Key created mode 600; the ledger syncs; the epoch closes with charts; a proof verifies
    online and offline (a forged leaf does not); `ledger verify` (a real process) checks it all."""
    key = run(capsys, "rewards", "operator-key", "init")
    assert (tmp_path / "operator" / "operator.key").stat().st_mode & 0o777 == 0o600
    assert run(capsys, "ledger", "sync") == {"appended": 6}  # 3 registrations, 3 batches
    closed = run(capsys, "rewards", "epoch", "close", EPOCH.key, "--force")
    assert closed["devices_paid"] == 2 and closed["synced_records"] == 0
    assert all(Path(str(p)).stat().st_size > 1000 for p in closed["charts"])  # type: ignore[attr-defined]
    device = sorted(closed["allocations"])[0]  # type: ignore[call-overload]
    proof = run(capsys, "rewards", "proof", device, EPOCH.key)
    assert proof["verified"] is True
    saved = tmp_path / "proof.json"
    saved.write_text(json.dumps(proof))
    assert run(
        capsys, "rewards", "verify-proof", str(saved), "--operator-key", str(key["public_key"])
    ) == {"verified": True, "operator_key": key["public_key"], "pinned": True}
    forged = {**proof, "leaf": str(proof["leaf"]).replace('"cumulative":"', '"cumulative":"9')}
    saved.write_text(json.dumps(forged))
    with pytest.raises(SystemExit):
        main(["rewards", "verify-proof", str(saved)])
    assert "NOT verified" in capsys.readouterr().out
    done = subprocess.run(
        [sys.executable, "-m", "roadswarm", "ledger", "verify", "--json"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["by_kind"] == {"device": 3, "batch": 3, "epoch": 1}


def test_refusals_are_one_line_with_an_exit_code(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A day that is not a Monday exits 2; an unfinished epoch, a missing key, a second close
    and a replaced key exit 1, each saying what to do."""
    with pytest.raises(SystemExit) as exit_info:
        main(["rewards", "epoch", "close", "2026-11-24"])
    assert exit_info.value.code == 2 and "Monday" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["rewards", "epoch", "close", EPOCH.key])
    assert exit_info.value.code == 1 and "operator-key init" in capsys.readouterr().err
    run(capsys, "rewards", "operator-key", "init")
    future = Epoch.containing(utcnow()).next().key
    for argv, message in (
        (["rewards", "epoch", "close", future], "grace period"),
        (["rewards", "operator-key", "init"], "never replaced"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1 and message in capsys.readouterr().err
    run(capsys, "rewards", "epoch", "close", EPOCH.key, "--force")
    with pytest.raises(SystemExit):
        main(["rewards", "epoch", "close", EPOCH.key, "--force"])
    assert "already closed" in capsys.readouterr().err
