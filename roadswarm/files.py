"""Writing outputs: whole files or nothing, and folders checked before long work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from roadswarm.errors import OutputError


class UnwritableOutputError(OutputError):
    """The output folder or file cannot be created or written."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename, so readers never see half a file."""
    try:
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        msg = f"cannot write {path} ({exc.strerror}): choose a writable output folder"
        raise UnwritableOutputError(msg) from exc
    try:
        # mkstemp creates 0600 files; outputs are meant to be shared like any other file.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the bytes do
        Path(temp_name).replace(path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        msg = f"cannot write {path} ({exc.strerror}): check free space and permissions"
        raise UnwritableOutputError(msg) from exc


def ensure_writable_folder(folder: Path) -> None:
    """Create `folder` and prove a file can be written there, before any long work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        msg = f"cannot write to {folder} ({exc.strerror}): choose a writable --out folder"
        raise UnwritableOutputError(msg) from exc
