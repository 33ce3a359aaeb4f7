"""The tile layers the map publishes: what each holds, its format and the zooms it is stored at.

Shared by the builders (imagery, freshness, coverage), the tile store and the consumer API, so
that all of them agree on a layer's file extension, media type and zoom range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mapbuilder.errors import UnknownLayer


@dataclass(frozen=True)
class LayerSpec:
    """One published layer: raster or vector, stored as `ext` tiles from `min_zoom` to `max_zoom`."""

    name: str
    kind: Literal["raster", "vector"]
    ext: Literal["webp", "png", "pbf"]
    media_type: str
    min_zoom: int
    max_zoom: int
    description: str


LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        LayerSpec(
            name="imagery",
            kind="raster",
            ext="webp",
            media_type="image/webp",
            min_zoom=14,
            max_zoom=21,
            description="road surface stitched from dashcam frames, seen from above",
        ),
        LayerSpec(
            name="freshness",
            kind="raster",
            ext="png",
            media_type="image/png",
            min_zoom=10,
            max_zoom=18,
            description="roads coloured by the age of their last capture",
        ),
        LayerSpec(
            name="coverage",
            kind="vector",
            ext="pbf",
            media_type="application/vnd.mapbox-vector-tile",
            min_zoom=10,
            max_zoom=16,
            description=(
                "road segments with coverage fraction, last capture time, number of captures and "
                "reward weight (Mapbox Vector Tiles; clients over-zoom above the max zoom)"
            ),
        ),
    )
}

EAGER_MIN_ZOOM = 14
"""Coverage and freshness tiles from this zoom up are rebuilt as frames are matched; below it a
tile spans kilometres and hundreds of segments, so those wait for the hourly refresh."""


def layer(name: str) -> LayerSpec:
    """The layer called `name`; `UnknownLayer` listing the layers when there is none."""
    spec = LAYERS.get(name)
    if spec is None:
        msg = f"unknown tile layer {name!r}: use one of {', '.join(sorted(LAYERS))}"
        raise UnknownLayer(msg)
    return spec
