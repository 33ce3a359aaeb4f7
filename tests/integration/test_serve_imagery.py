"""Imagery queries by polygon and by road segment, paging, heading filter, signed image URLs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from ingest.db import Catalog
from ingest.services import open_store
from ingest.settings import IngestSettings
from ingest.storage import LocalObjectStore
from mapbuilder.serve.presign import open_presigner
from mapbuilder.serve.settings import ServeSettings
from tests.rewards_helpers import fixed_device
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


def test_imagery_on_s3_answers_presigned_gets(
    s3_endpoint: str, sqlite_catalog: Catalog, request: pytest.FixtureRequest
) -> None:
    """With S3/MinIO as the store, each frame's image URL is a short-lived presigned GET of its
    object, made for the public endpoint; it fetches the blurred JPEG straight from S3. (moto
    enforces neither signatures nor expiry, so the URL's terms are checked here; S3 and MinIO
    refuse such a URL once X-Amz-Expires has passed.)"""
    ingest = IngestSettings(
        s3_endpoint=f"http://{s3_endpoint}",
        s3_public_endpoint=f"http://localhost:{s3_endpoint.rsplit(':', 1)[1]}",
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket=f"frames-{request.node.name.replace('_', '-')[:40].lower()}",
    )
    store = open_store(ingest)
    frames = seed_frames(sqlite_catalog, store, 3)
    presigner = open_presigner(ingest, ServeSettings(image_url_ttl_s=120))
    assert presigner is not None
    with served_map_api(sqlite_catalog, store, presigner=presigner) as api:
        before = time.time()
        got = _query(api).json()["frames"]
    assert [f["frame_id"] for f in got] == [f.frame_id for f in frames]
    url = urlsplit(got[1]["image_url"])
    assert (url.scheme, url.netloc) == ("http", f"localhost:{s3_endpoint.rsplit(':', 1)[1]}")
    assert (
        url.path
        == f"/{ingest.s3_bucket}/frames/{fixed_device(7).device_id}/{frames[1].frame_id}.jpg"
    )
    terms = dict(parse_qsl(url.query))
    assert terms["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert terms["X-Amz-Expires"] == "120"
    assert terms["X-Amz-Credential"].startswith("test/")
    assert re.fullmatch(r"[0-9a-f]{64}", terms["X-Amz-Signature"])
    signed_at = datetime.strptime(terms["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before - 1 <= signed_at.timestamp() <= time.time()
    expires_at = datetime.fromisoformat(got[1]["image_url_expires_at"])
    assert expires_at == signed_at + timedelta(seconds=120)
    image = httpx.get(got[1]["image_url"])
    assert image.status_code == 200 and image.content == frames[1].jpeg
