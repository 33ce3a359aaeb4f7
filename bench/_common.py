"""Helpers every benchmark uses: anchor tools in their own virtual environments, report marks."""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


def ensure_venv(venv: Path, packages: tuple[str, ...] | list[str]) -> Path:
    """The `bin` folder of a virtual environment holding `packages`, created and filled once, so an
    anchor's dependencies never enter the project's own environment."""
    ready = venv / ".roadswarm-ready"
    if not ready.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", *packages]
        subprocess.run(pip, check=True, capture_output=True)
        ready.touch()
    return venv / "bin"


def number(entry: dict[str, object], key: str) -> float:
    """A numeric field of a report entry."""
    value = entry[key]
    assert isinstance(value, int | float)
    return float(value)


def verdict(ok: bool) -> str:
    """How a measured figure stands against its target."""
    return "ok" if ok else "MISS"


def run_and_report(
    args: argparse.Namespace,
    prefix: str,
    run_bench: Callable[[argparse.Namespace, Path], dict[str, object]],
    print_summary: Callable[[dict[str, object]], None],
) -> None:
    """Run a benchmark in `args.workdir` (kept, so a drive is rendered once) or in a temporary
    folder; print its report as JSON and its summary, and write the JSON to `args.json_out`."""
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = run_bench(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            report = run_bench(args, Path(tmp))
    print(json.dumps(report, indent=2))
    print_summary(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
