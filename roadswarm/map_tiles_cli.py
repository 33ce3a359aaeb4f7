"""`roadswarm map tiles build` and `roadswarm map tiles status`: the imagery layer, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click
from tqdm import tqdm

from ingest.services import open_catalog, open_store
from ingest.settings import IngestSettings
from mapbuilder.errors import TileOutOfRangeError, UnknownLayer
from mapbuilder.tiles.context import IMAGERY, TileContext
from mapbuilder.tiles.layers import layer
from mapbuilder.tiles.operations import build_imagery, tiles_status
from roadswarm.errors import UserInputError
from roadswarm.output import emit, json_option


@contextmanager
def _user_input() -> Iterator[None]:
    """An unknown layer or a zoom it does not have is the user's input: exit status 2."""
    try:
        yield
    except (UnknownLayer, TileOutOfRangeError) as exc:
        raise UserInputError(str(exc)) from exc


def _check_layer(layer_name: str) -> None:
    """Only the imagery layer is built from frames; say where the others are built."""
    if layer(layer_name).name != IMAGERY:
        msg = (
            f"layer {layer_name!r} is not built from frames: build it with "
            "`roadswarm map layers build`"
        )
        raise UserInputError(msg)


@click.group("tiles")
def tiles_group() -> None:
    """The imagery layer: dashcam frames stitched into z21 tiles and the pyramid below."""


@tiles_group.command("build")
@click.option("--layer", "layer_name", default=IMAGERY, show_default=True, help="The layer.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Rebuild every tile, not only dirty ones (after changing the tile settings).",
)
@click.option(
    "--min-zoom", type=int, default=None, help="Stop the pyramid here (default: the layer's)."
)
@json_option
def build_command(layer_name: str, everything: bool, min_zoom: int | None, as_json: bool) -> None:
    """Pose matched frames and build the dirty tiles in this process, into the object store
    (ROADSWARM_DATABASE_URL, ROADSWARM_STORE_*); workers on the `tiles` queue do the same."""
    settings = IngestSettings()
    catalog = open_catalog(settings)
    try:
        ctx = TileContext(catalog, open_store(settings))
        with _user_input(), tqdm(desc="blocks", unit="block", disable=as_json or None) as bar:
            _check_layer(layer_name)
            run = build_imagery(
                ctx,
                layer_name=layer_name,
                everything=everything,
                min_zoom=min_zoom,
                on_block=lambda _report: _tick(bar),
            )
    finally:
        catalog.dispose()
    summary = run.summary
    text = (
        f"{run.frames_posed} frames posed ({_reasons(run.skipped)}); "
        f"{sum(summary.written.values())} tiles written, {sum(summary.removed.values())} removed "
        f"in {sum(summary.blocks.values())} blocks"
    )
    emit(asdict(run), as_json=as_json, text=text)


def _tick(bar: tqdm[Any]) -> None:
    bar.update(1)


def _reasons(skipped: dict[str, int]) -> str:
    if not skipped:
        return "none skipped"
    return "skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))


@tiles_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Built and dirty tiles per layer and zoom, posed and skipped frames."""
    catalog = open_catalog(IngestSettings())
    try:
        status = tiles_status(catalog)
    finally:
        catalog.dispose()
    lines = [
        f"{name}: {info['built']} built, {info['dirty']} dirty"
        for name, info in status["layers"].items()
    ]
    lines.append(
        f"frames posed: {status['frames_posed']}; skipped: {_reasons(status['frames_skipped'])}; "
        f"sequences waiting for poses: {status['sequences_pending']}"
    )
    emit(status, as_json=as_json, text="\n".join(lines))
