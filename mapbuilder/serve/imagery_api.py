"""Imagery routes: frames by polygon or road segment, frame positions, and signed image URLs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from ingest.errors import ObjectNotFoundError
from mapbuilder.serve.area import query_polygon
from mapbuilder.serve.auth import KEYED, require_key, services_of
from mapbuilder.serve.errors import BadQueryError, FrameNotFoundError
from mapbuilder.serve.imagery import FrameHit, FrameQuery, find_frames, frame_by_id
from mapbuilder.serve.keys import ApiKey
from mapbuilder.serve.schemas import FrameOut, FramePage, ImageryQuery
from mapbuilder.serve.services import ServeServices

router = APIRouter(tags=["imagery"])
FrameIdPath = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="64 hex digits")]
MAX_POSITIONS = 5000


def _limit(services: ServeServices, wanted: int) -> int:
    most = services.settings.max_page_frames
    if wanted > most:
        msg = f"limit {wanted} is above the {most} frames a page may hold: page with next_cursor"
        raise BadQueryError(msg)
    return wanted


def _image_url(request: Request, services: ServeServices, hit: FrameHit) -> tuple[str, int]:
    """A short-lived URL to the frame's image and its expiry: presigned on S3, else this API's own."""
    if services.presigner is not None:
        presigned = services.presigner.sign(hit.object_key)
        return presigned.url, presigned.expires_s
    signed = services.signer.sign(hit.frame_id)
    return str(request.base_url).rstrip("/") + signed.path, signed.expires_s


def _frame_out(request: Request, services: ServeServices, hit: FrameHit) -> FrameOut:
    image_url, expires_s = _image_url(request, services, hit)
    return FrameOut(
        frame_id=hit.frame_id,
        lon=hit.lon,
        lat=hit.lat,
        heading_deg=hit.heading_deg,
        captured_at=hit.captured_at,
        sequence_id=hit.sequence_id,
        sequence_index=hit.sequence_index,
        segment_id=hit.segment_id,
        image_url=image_url,
        image_url_expires_at=datetime.fromtimestamp(expires_s, UTC),
    )


def _page(request: Request, key: ApiKey, hits: list[FrameHit], cursor: str | None) -> FramePage:
    """The page answered, with its frames metered to the key."""
    services = services_of(request)
    if hits:
        credits = services.settings.credits_per_frame * len(hits)
        services.meter.add(key.key_id, frames=len(hits), credits=credits)
    return FramePage(
        frames=[_frame_out(request, services, hit) for hit in hits], next_cursor=cursor
    )


@router.post("/v1/imagery/query", summary="Frames in a polygon and time window", dependencies=KEYED)
def query_imagery(body: ImageryQuery, request: Request) -> FramePage:
    """Published frames inside a GeoJSON polygon, oldest first, each with a signed image URL."""
    key = require_key(request)
    services = services_of(request)
    polygon = query_polygon(
        body.geometry.model_dump(), max_area_km2=services.settings.max_query_area_km2
    )
    query = FrameQuery(
        start=body.start,
        end=body.end,
        limit=_limit(services, body.limit),
        polygon=polygon,
        heading_deg=body.heading_deg,
        tolerance_deg=body.tolerance_deg,
        cursor=body.cursor,
    )
    return _page(request, key, *find_frames(services.catalog, query))


@router.get(
    "/v1/imagery/segments/{segment_id}", summary="Frames on a road segment", dependencies=KEYED
)
def segment_imagery(
    segment_id: Annotated[str, Path(max_length=32)],
    start: datetime,
    end: datetime,
    request: Request,
    heading_deg: Annotated[float | None, Query(ge=0, le=360)] = None,
    tolerance_deg: Annotated[float, Query(ge=0, le=180)] = 45.0,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> FramePage:
    """Published frames matched to one road segment, oldest first, each with a signed image URL."""
    key = require_key(request)
    services = services_of(request)
    query = FrameQuery(
        start=start,
        end=end,
        limit=_limit(services, limit),
        segment_id=segment_id,
        heading_deg=heading_deg,
        tolerance_deg=tolerance_deg,
        cursor=cursor,
    )
    return _page(request, key, *find_frames(services.catalog, query))


@router.get(
    "/v1/frames/{frame_id}",
    summary="One frame and a signed URL to its image",
    dependencies=KEYED,
)
def frame_detail(frame_id: FrameIdPath, request: Request) -> FrameOut:
    """A published frame by id (metered as one frame)."""
    key = require_key(request)
    services = services_of(request)
    hit = frame_by_id(services.catalog, frame_id)
    if hit is None:
        msg = f"no published frame {frame_id}: it may be quarantined or not ingested yet"
        raise FrameNotFoundError(msg)
    return _page(request, key, [hit], None).frames[0]


@router.get(
    "/v1/frames/{frame_id}/image.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    summary="A frame's blurred image, through a signed URL",
)
def frame_image(
    frame_id: FrameIdPath,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="HMAC-SHA256, hex")],
    request: Request,
) -> Response:
    """The JPEG, when the URL's signature holds and it has not expired (no API key needed)."""
    services = services_of(request)
    services.signer.check(frame_id, expires, sig)
    hit = frame_by_id(services.catalog, frame_id)
    if hit is None:
        msg = f"no published frame {frame_id}: it may have been withdrawn"
        raise FrameNotFoundError(msg)
    try:
        data = services.store.get_bytes(hit.object_key)
    except ObjectNotFoundError as exc:
        msg = f"the image of frame {frame_id} is missing from the store: tell the operator"
        raise FrameNotFoundError(msg) from exc
    headers = {"Cache-Control": "private, max-age=60", "ETag": f'"{frame_id}"'}
    return Response(data, media_type="image/jpeg", headers=headers)


@router.get(
    "/v1/frames.geojson",
    summary="Frame positions in a box (for map viewers)",
    dependencies=KEYED,
)
def frame_positions(
    request: Request,
    bbox: Annotated[str, Query(description="west,south,east,north in degrees")],
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Up to 5000 frame positions as GeoJSON points; no image URLs, so nothing is metered."""
    require_key(request)
    services = services_of(request)
    polygon = query_polygon(_bbox_polygon(bbox), max_area_km2=services.settings.max_query_area_km2)
    query = FrameQuery(
        start=start or datetime(1970, 1, 1, tzinfo=UTC),
        end=end or datetime(9999, 1, 1, tzinfo=UTC),
        limit=MAX_POSITIONS,
        polygon=polygon,
    )
    hits, _ = find_frames(services.catalog, query)
    return {"type": "FeatureCollection", "features": [_point(hit) for hit in hits]}


def _bbox_polygon(bbox: str) -> dict[str, Any]:
    try:
        west, south, east, north = (float(part) for part in bbox.split(","))
    except ValueError as exc:
        msg = f"bbox {bbox!r} is not four numbers: give west,south,east,north in degrees"
        raise BadQueryError(msg) from exc
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _point(hit: FrameHit) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": hit.frame_id,
        "geometry": {"type": "Point", "coordinates": [hit.lon, hit.lat]},
        "properties": {
            "frame_id": hit.frame_id,
            "heading_deg": hit.heading_deg,
            "captured_at": hit.captured_at.isoformat(),
            "segment_id": hit.segment_id,
        },
    }
