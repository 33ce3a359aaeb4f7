"""Imagery queries by polygon and by road segment, paging, heading filter, signed image URLs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from tests.serve_helpers import (
    ORIGIN,
    SEGMENT,
    START,
    MapApi,
    SeededFrame,
    seed_frames,
    served_map_api,
)

HEADINGS = (350.0, 10.0, 90.0, 180.0)


@pytest.fixture
def imagery(catalog: Catalog, tmp_path: Path) -> Iterator[tuple[MapApi, list[SeededFrame]]]:
    """The API over 12 frames on SQLite and PostgreSQL, headings cycling through HEADINGS."""
    store = LocalObjectStore(tmp_path / "store")
    frames = seed_frames(catalog, store, 12, headings=HEADINGS)
    with served_map_api(catalog, store) as api:
        yield api, frames


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _query(api: MapApi, **fields: Any) -> Any:
    body = {
        "geometry": _box(
            ORIGIN[0] - 0.001, ORIGIN[1] - 0.001, ORIGIN[0] + 0.001, ORIGIN[1] + 0.001
        ),
        "start": START.isoformat(),
        "end": (START + timedelta(days=1)).isoformat(),
        **fields,
    }
    return api.http.post("/v1/imagery/query", json=body, headers=api.keyed())


def test_polygon_and_time_window_select_frames(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """Only frames inside the polygon and the window come back, oldest first, with all fields."""
    api, frames = imagery
    north_edge = frames[5].lat + 1e-6  # frames 0..5 lie inside
    answer = _query(
        api,
        geometry=_box(ORIGIN[0] - 0.001, ORIGIN[1] - 0.001, ORIGIN[0] + 0.001, north_edge),
        start=(START + timedelta(minutes=1)).isoformat(),
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()["frames"]
    assert [f["frame_id"] for f in got] == [f.frame_id for f in frames[1:6]]
    first = got[0]
    assert first["lat"] == pytest.approx(frames[1].lat)
    assert first["heading_deg"] == HEADINGS[1]
    assert first["sequence_id"] == "seq-1" and first["sequence_index"] == 1
    assert first["segment_id"] == SEGMENT
    assert first["captured_at"].startswith("2026-11-02T08:01:00")


def test_heading_filter_wraps_at_north(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """Heading 0 with 15 degrees of tolerance finds frames facing 350 and 10, not 90 or 180."""
    api, _ = imagery
    got = _query(api, heading_deg=0, tolerance_deg=15).json()["frames"]
    assert {f["heading_deg"] for f in got} == {350.0, 10.0}
    assert len(got) == 6


def test_paging_returns_every_frame_once(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """Pages of 5 with the cursor cover all 12 frames in order, and the last page has no cursor."""
    api, frames = imagery
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        page = _query(api, limit=5, cursor=cursor).json()
        seen += [f["frame_id"] for f in page["frames"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f.frame_id for f in frames]
    usage = api.http.get("/v1/account/usage", headers=api.keyed()).json()
    assert usage["days"][0]["frames"] == 12
    assert usage["total_credits"] == 12 * usage["credits_per_frame"]


def test_segment_query(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """Frames by road segment id, in the same shape; an unknown segment gives an empty page."""
    api, frames = imagery
    params = {"start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat()}
    got = api.http.get(f"/v1/imagery/segments/{SEGMENT}", params=params, headers=api.keyed())
    assert [f["frame_id"] for f in got.json()["frames"]] == [f.frame_id for f in frames]
    none = api.http.get("/v1/imagery/segments/nowhere", params=params, headers=api.keyed())
    assert none.json() == {"frames": [], "next_cursor": None}


def test_signed_url_serves_the_blurred_image(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """The image URL returns the stored JPEG without a key; a changed signature or frame is refused."""
    api, frames = imagery
    url = _query(api, limit=1).json()["frames"][0]["image_url"]
    image = api.http.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content == frames[0].jpeg
    tampered = re.sub(r"sig=[0-9a-f]{4}", "sig=0000", url)
    assert api.http.get(tampered).status_code == 403
    other = url.replace(frames[0].frame_id, frames[1].frame_id)
    refused = api.http.get(other)
    assert refused.status_code == 403
    assert "signature" in refused.json()["message"]


def test_expired_signed_url_is_refused(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """A URL past its expiry answers 403 telling the caller to query again."""
    api, frames = imagery
    signed = api.services.signer.sign(frames[0].frame_id, now_s=1_000_000.0)
    answer = api.http.get(signed.path)
    assert answer.status_code == 403
    assert "expired" in answer.json()["message"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[24, 60], [25, 61], [24, 61], [25, 60], [24, 60]]],
                }
            },
            "not a valid polygon",
        ),
        ({"geometry": _box(24.0, 60.0, 25.0, 61.0)}, "km²"),
        ({"geometry": _box(170.0, 60.0, 190.0, 60.01)}, "leaves the Earth"),
        ({"geometry": {"type": "Polygon", "coordinates": [[[24, 60]]]}}, "not readable GeoJSON"),
        ({"end": START.isoformat()}, "time window is empty"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 10_000}, "page with next_cursor"),
        ({"start": "2026-11-02T08:00:00"}, "timezone"),
        ({"heading_deg": 400}, "heading_deg"),
    ],
)
def test_bad_queries_get_actionable_messages(
    imagery: tuple[MapApi, list[SeededFrame]], fields: dict[str, Any], words: str
) -> None:
    """Self-crossing or huge polygons, empty windows, foreign cursors: 400/422 saying what to fix."""
    api, _ = imagery
    answer = _query(api, **fields)
    assert answer.status_code in (400, 422), answer.text
    assert words in answer.json()["message"]


def test_frame_positions_and_detail(imagery: tuple[MapApi, list[SeededFrame]]) -> None:
    """The viewer's GeoJSON lists positions; the detail of one frame carries its image URL."""
    api, frames = imagery
    bbox = f"{ORIGIN[0] - 0.01},{ORIGIN[1] - 0.01},{ORIGIN[0] + 0.01},{ORIGIN[1] + 0.01}"
    points = api.http.get("/v1/frames.geojson", params={"bbox": bbox}, headers=api.keyed()).json()
    assert len(points["features"]) == 12
    detail = api.http.get(f"/v1/frames/{frames[3].frame_id}", headers=api.keyed()).json()
    assert detail["segment_id"] == SEGMENT
    assert api.http.get(detail["image_url"]).content == frames[3].jpeg
    missing = api.http.get(f"/v1/frames/{'0' * 64}", headers=api.keyed())
    assert missing.status_code == 404
