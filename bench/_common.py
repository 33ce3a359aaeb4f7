"""Helpers every benchmark uses: anchor tools in their own virtual environments, report marks."""

from __future__ import annotations

import subprocess
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
