"""The model registry: which detectors exist, where their weights come from, how to feed them.

The built-in manifest is `registry.toml` beside this module; a user adds detectors of a supported
family in a TOML file of the same format named by `ROADSWARM_MODELS_REGISTRY`, without code changes.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import ModelError

Task = Literal["face", "plate"]
Family = Literal["centerface", "yolo"]
BUILTIN_MANIFEST = Path(__file__).with_name("registry.toml")
USER_MANIFEST_ENV = "ROADSWARM_MODELS_REGISTRY"


class UnknownModelError(ModelError):
    """No detector of that name is registered."""


class RegistryError(ModelError):
    """A manifest file is missing or malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelSource(_Strict):
    """A file inside a wheel on the package registry (PyPI or the index pip is configured for)."""

    package: str
    version: str
    path: str


class FileSource(_Strict):
    """A local ONNX file a user registered (their own model, or one they fetched themselves)."""

    file: Path


class InputSpec(_Strict):
    """How an image becomes the model's input tensor."""

    colour: Literal["RGB", "BGR"] = "RGB"
    scale: float = 1.0
    dtype: Literal["float32", "float16"] = "float32"
    stride: int = 32
    default_size: tuple[int, int] = (640, 640)  # width, height


class OutputSpec(_Strict):
    """Tensor names: CenterFace uses heatmap/scale/offset/landmarks, YOLO uses predictions."""

    input: str
    heatmap: str | None = None
    scale: str | None = None
    offset: str | None = None
    landmarks: str | None = None
    predictions: str | None = None
    mask_coefficients: int = 0
    # YOLO: the raw per-scale head outputs (box distribution + class logits) and their strides. When
    # given, the graph is cut there and boxes are decoded here, so any input size works.
    heads: tuple[str, ...] = ()
    strides: tuple[int, ...] = ()
    reg_max: int = 16


class PrepareSpec(_Strict):
    """How `roadswarm models prepare` may make device variants of a model."""

    # Nodes whose names start with these stay in float when quantizing: the detection head mixes box
    # coordinates with scores, and int8 there collapses every score (measured on the plate model).
    # Empty: no int8 variant is made (a model whose head cannot be told apart by name).
    int8_keep_float: tuple[str, ...] = ()


class ModelSpec(_Strict):
    """One registered detector."""

    name: str
    task: Task
    family: Family
    licence: str
    author: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: WheelSource | FileSource
    input: InputSpec
    outputs: OutputSpec
    prepare: PrepareSpec = PrepareSpec()


def _read_manifest(path: Path) -> list[ModelSpec]:
    try:
        data = tomllib.loads(path.read_text())
        return [ModelSpec.model_validate(entry) for entry in data.get("detector", [])]
    except OSError as exc:
        msg = f"cannot read model registry {path} ({exc.strerror}): check {USER_MANIFEST_ENV}"
        raise RegistryError(msg) from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        msg = f"model registry {path} is malformed ({'; '.join(first)}): fix the file"
        raise RegistryError(msg) from exc


@cache
def _load(user_manifest: str | None) -> dict[str, ModelSpec]:
    specs = _read_manifest(BUILTIN_MANIFEST)
    if user_manifest:
        specs += _read_manifest(Path(user_manifest))
    # A user entry with a built-in name replaces it: that is how a user swaps in another model.
    return {spec.name: spec for spec in specs}


def all_models() -> dict[str, ModelSpec]:
    """Every registered detector by name: built-in ones, then the user's."""
    return _load(os.environ.get(USER_MANIFEST_ENV) or None)


def get_model(name: str) -> ModelSpec:
    """The detector called `name`."""
    models = all_models()
    if name not in models:
        msg = f"no model named {name!r}: choose one of {', '.join(sorted(models))}"
        raise UnknownModelError(msg)
    return models[name]


DEFAULT_MODELS: dict[Task, str] = {"face": "centerface", "plate": "platedet-yolov8s-seg"}
