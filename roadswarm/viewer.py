"""The demo's summary page (`site/index.html`, self-contained, no internet): the road network with
every driver's true track and GNSS fixes, a frame of each drive, and the figures of the run. The
map itself is served by the consumer API's MapLibre viewer (roadswarm/demo_map.py).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)
TRACK_COLOURS = ("#e4572e", "#17bebb", "#ffc914", "#76b041", "#a05195", "#2e86ab")
SVG_SIZE_PX = 720


def _svg_points(
    points: Iterable[tuple[float, float]], bounds: tuple[float, ...], scale: float
) -> str:
    west, _, _, north = bounds
    return " ".join(f"{(x - west) * scale:.1f},{(north - y) * scale:.1f}" for x, y in points)


def map_svg(
    roads: list[list[tuple[float, float]]], tracks: list[dict[str, Any]], bounds: tuple[float, ...]
) -> str:
    """Roads in grey, each drive's true path as a line and its GNSS fixes as dots, in local metres."""
    west, south, east, north = bounds
    scale = SVG_SIZE_PX / max(east - west, north - south)
    width, height = (east - west) * scale, (north - south) * scale
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}">']
    parts.append('<rect width="100%" height="100%" fill="#f4f1ea"/>')
    for road in roads:
        parts.append(
            f'<polyline points="{_svg_points(road, bounds, scale)}" fill="none" stroke="#9a9a9a" stroke-width="2"/>'
        )
    for i, track in enumerate(tracks):
        colour = TRACK_COLOURS[i % len(TRACK_COLOURS)]
        parts.append(
            f'<polyline points="{_svg_points(track["path"], bounds, scale)}" fill="none" '
            f'stroke="{colour}" stroke-width="3"><title>{html.escape(track["device"])}</title></polyline>'
        )
        for x, y in track["fixes"]:
            px, py = (x - west) * scale, (north - y) * scale
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}" opacity="0.7"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def index_html(summary: dict[str, Any], svg: str) -> str:
    """The page: totals, the map, and one card per drive."""
    totals = summary["totals"]
    rows = "".join(
        f"<tr><td>{html.escape(d['device'])}</td><td>{d['frames']}</td><td>{d['distance_m'] / 1000:.2f}</td>"
        f"<td>{d['segments']}</td><td>{d['plates_seen']}</td><td>{d['faces_seen']}</td>"
        f"<td>{d.get('keyframes', 0)}</td></tr>"
        for d in summary["drives"]
    )
    cards = "".join(
        f'<figure><img src="{html.escape(d["thumbnail"])}" width="480" alt="frame of {html.escape(d["device"])}">'
        f"<figcaption>{html.escape(d['device'])}: "
        + " ".join(
            f'<code title="{html.escape(key)}">{html.escape(name)}</code>'
            for name, key in d["objects"].items()
        )
        + "</figcaption></figure>"
        + "".join(
            f'<figure><img src="{html.escape(name)}" width="240" alt="anonymized keyframe">'
            "<figcaption>anonymized keyframe</figcaption></figure>"
            for name in d.get("keyframe_thumbnails", [])
        )
        for d in summary["drives"]
    )
    pending = ", ".join(summary["pending_stages"]) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>roadswarm demo</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block;margin:1em}}</style>
</head><body>
<h1>roadswarm demo</h1>
<p><a href="/">The map</a> (imagery, coverage and freshness tiles, frames).</p>
<p>{totals["drives"]} drives, {totals["frames"]} frames, {totals["km_driven"]:.2f} km driven,
{totals["segments_covered"]} road segments covered. Stages still to come: {html.escape(pending)}.</p>
<table><tr><th>device</th><th>frames</th><th>km</th><th>segments</th><th>plate boxes</th><th>face boxes</th><th>keyframes</th></tr>{rows}</table>
<h2>Tracks</h2>{svg}
<h2>Drives</h2>{cards}
<script type="application/json" id="summary">{html.escape(json.dumps(summary))}</script>
</body></html>"""
