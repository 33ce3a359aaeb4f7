"""`roadswarm map layers build` and `roadswarm map export`: the coverage and freshness layers, and
PMTiles snapshots of any layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import click

from ingest.catalog import utcnow
from ingest.services import open_catalog, open_store
from ingest.settings import IngestSettings
from mapbuilder.errors import UnknownLayer
from mapbuilder.layers.marking import LAYER_NAMES
from mapbuilder.layers.pmtiles_export import (
    EmptyLayerError,
    UnwritableExportError,
    export_pmtiles,
)
from mapbuilder.tiles.layers import LAYERS
from mapbuilder.tiles.store import TileStore
from roadswarm.errors import OutputError, UserInputError
from roadswarm.map_layers import build_layers
from roadswarm.output import emit, json_option


@contextmanager
def _export_errors() -> Iterator[None]:
    """An unknown or empty layer is the user's input (exit 2); an unwritable target, exit 3."""
    try:
        yield
    except (UnknownLayer, EmptyLayerError) as exc:
        raise UserInputError(str(exc)) from exc
    except UnwritableExportError as exc:
        raise OutputError(str(exc)) from exc


@click.group("layers")
def layers_group() -> None:
    """The coverage (vector) and freshness (raster) layers built from the catalog."""


@layers_group.command("build")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Rebuild every tile, not only dirty ones (run daily: freshness colours age).",
)
@click.option(
    "--layer",
    "layers",
    multiple=True,
    type=click.Choice(LAYER_NAMES),
    help="Only this layer (repeatable; default: both).",
)
@json_option
def build_command(everything: bool, layers: tuple[str, ...], as_json: bool) -> None:
    """Build the coverage and freshness tiles whose segments have new captures, into the object
    store (ROADSWARM_DATABASE_URL, ROADSWARM_STORE_*)."""
    settings = IngestSettings()
    catalog = open_catalog(settings)
    try:
        result = build_layers(
            catalog,
            open_store(settings),
            now=utcnow(),
            everything=everything,
            layers=layers or LAYER_NAMES,
        )
    finally:
        catalog.dispose()
    text = "; ".join(
        f"{name}: {result.written[name]} written, {result.unchanged[name]} unchanged, "
        f"{result.removed[name]} removed"
        for name in result.written
    )
    emit(asdict(result), as_json=as_json, text=text)


@click.command("export")
@click.option(
    "--layer",
    "layer_name",
    required=True,
    help=f"The layer to export: {', '.join(sorted(LAYERS))}.",
)
@click.option(
    "--pmtiles",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The archive to write (replaced atomically).",
)
@json_option
def export_command(layer_name: str, path: Path, as_json: bool) -> None:
    """Write a PMTiles v3 snapshot of one layer's stored tiles (with TileJSON metadata)."""
    with _export_errors():
        exported = export_pmtiles(TileStore(open_store(IngestSettings())), layer_name, path)
    text = (
        f"{exported.tiles} {exported.layer} tiles (z{exported.min_zoom}-z{exported.max_zoom}, "
        f"{exported.bytes} bytes) written to {exported.path}"
    )
    emit(asdict(exported), as_json=as_json, text=text)
