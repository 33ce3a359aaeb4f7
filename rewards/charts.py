"""Each closed epoch's pictures: how the pool was distributed, and which roads it paid for.

Drawn with Pillow (already a dependency), written atomically next to each other in one folder
per epoch; they are for people, so they are not part of the signed record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import select

from ingest.db import Catalog
from mapbuilder.catalog import RoadSegmentRow
from rewards.close import Computed
from rewards.settings import BASE_UNITS_PER_TOKEN

WIDTH, HEIGHT, MARGIN = 900, 520, 60
MAP_SIZE = 900
MAX_BACKGROUND_SEGMENTS = 50_000
BAR_COLOUR, AXIS_COLOUR, ROAD_COLOUR = (40, 110, 200), (60, 60, 60), (205, 205, 205)


def _save(image: Image.Image, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, "PNG")
    tmp.replace(path)
    return path


def distribution_chart(body: dict[str, Any], path: Path) -> Path:
    """Devices' gross amounts, largest first, with the share the top tenth received."""
    amounts = sorted((int(d["gross"]) for d in body["details"]["devices"]), reverse=True)
    amounts = [a for a in amounts if a > 0]
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    statement = body["statement"]
    total = sum(amounts)
    top = sum(amounts[: max(1, len(amounts) // 10)]) / total if total else 0.0
    draw.text(
        (MARGIN, 15),
        f"epoch {statement['epoch']}: {total / BASE_UNITS_PER_TOKEN:,.3f} tokens to {len(amounts)} devices"
        f" (top 10 %: {top:.0%}); carried over {int(statement['pool']['carried_out']) / BASE_UNITS_PER_TOKEN:,.3f}",
        fill=AXIS_COLOUR,
    )
    left, bottom, right, upper = MARGIN, HEIGHT - MARGIN, WIDTH - 20, 45
    draw.line([(left, upper), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    if amounts:
        width = (right - left) / len(amounts)
        for i, amount in enumerate(amounts):
            x0 = left + i * width
            height = (bottom - upper) * amount / amounts[0]
            draw.rectangle([x0, bottom - height, max(x0, x0 + width - 1), bottom], fill=BAR_COLOUR)
        draw.text((5, upper), f"{amounts[0] / BASE_UNITS_PER_TOKEN:,.1f}", fill=AXIS_COLOUR)
    draw.text((left, bottom + 10), "devices, by amount received", fill=AXIS_COLOUR)
    return _save(image, path)


def _segment_lines(catalog: Catalog, wanted: set[str]) -> dict[str, np.ndarray]:
    """Geometry of the wanted segments, plus the rest of the network when it is small enough."""
    with catalog.session() as session:
        count = len(session.scalars(select(RoadSegmentRow.segment_id)).all())
        query = select(RoadSegmentRow.segment_id, RoadSegmentRow.lonlat)
        if count > MAX_BACKGROUND_SEGMENTS:
            query = query.where(RoadSegmentRow.segment_id.in_(sorted(wanted)))
        return {sid: np.array(json.loads(text), np.float64) for sid, text in session.execute(query)}


def _colour(freshness: float) -> tuple[int, int, int]:
    """Stale (little earned) in blue through to fresh (much earned) in orange."""
    f = min(max(freshness, 0.0), 1.0)
    return (int(30 + 220 * f), int(90 + 60 * f), int(200 - 170 * f))


def coverage_map(catalog: Catalog, computed: Computed, path: Path) -> Path:
    """The network in grey, each segment captured this epoch coloured by its bins' freshness."""
    bins = computed.scores.bins
    fresh: dict[str, list[float]] = {}
    for code, value in zip(bins.segment.tolist(), bins.freshness.tolist(), strict=True):
        fresh.setdefault(computed.segments.segment_ids[code], []).append(value)
    lines = _segment_lines(catalog, set(fresh))
    image = Image.new("RGB", (MAP_SIZE, MAP_SIZE), "white")
    draw = ImageDraw.Draw(image)
    points = np.concatenate(list(lines.values())) if lines else np.zeros((0, 2))
    if len(points):
        scale_x = np.cos(np.radians(points[:, 1].mean()))
        low, high = points.min(axis=0), points.max(axis=0)
        span = max((high[0] - low[0]) * scale_x, high[1] - low[1], 1e-9)

        def pixels(line: np.ndarray) -> list[tuple[float, float]]:
            x = 20 + (line[:, 0] - low[0]) * scale_x / span * (MAP_SIZE - 60)
            y = MAP_SIZE - 20 - (line[:, 1] - low[1]) / span * (MAP_SIZE - 60)
            return list(zip(x.tolist(), y.tolist(), strict=True))

        for sid, line in lines.items():
            if sid not in fresh:
                draw.line(pixels(line), fill=ROAD_COLOUR, width=1)
        for sid, values in fresh.items():
            if sid in lines:
                draw.line(pixels(lines[sid]), fill=_colour(float(np.mean(values))), width=3)
    draw.text(
        (20, 5),
        f"captured segments: {len(fresh)} (blue: recently seen, orange: stale or new)",
        fill=AXIS_COLOUR,
    )
    return _save(image, path)


def write_charts(catalog: Catalog, computed: Computed, folder: Path) -> list[Path]:
    """Both pictures of an epoch into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        distribution_chart(computed.body, folder / "distribution.png"),
        coverage_map(catalog, computed, folder / "coverage.png"),
    ]
