"""Property tests of every parser on the servers' side (hypothesis): the JPEG checks, manifests
and their signatures, signed requests, upload forms, bucket notifications, object keys, tile
addresses, imagery polygons and cursors, and the GPS plausibility of tracks. Whatever comes in,
each answers with its result or its own error, never a crash."""

from __future__ import annotations

import contextlib
import io
import json
import string
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from ingest.errors import InvalidObjectKeyError, UploadRefusedError
from ingest.imagecheck import ImageFacts, Rejection, inspect_image
from ingest.notifications import created_keys
from ingest.plausibility import TrackPoint, implausible_points
from ingest.protocol import (
    BatchManifest,
    FrameEntry,
    ProtocolError,
    SignedManifest,
    UploadItem,
    device_id_for,
    sign,
    sign_request,
    verify,
    verify_request,
)
from ingest.settings import ValidationSettings
from ingest.storage import LocalObjectStore, validate_key
from ingest.uploads import LocalUploadSigner
from mapbuilder.errors import MapError
from mapbuilder.serve.area import query_polygon
from mapbuilder.serve.errors import BadQueryError
from mapbuilder.serve.imagery import decode_cursor
from mapbuilder.tiles.store import check_tile
from tests.reliability.properties import JSON, SETTINGS

LIMITS = ValidationSettings()
KEY = Ed25519PrivateKey.generate()
DEVICE = device_id_for(KEY.public_key())


def _jpeg(width: int, height: int, mode: str = "RGB", **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 90).save(buffer, "JPEG", **options)
    return buffer.getvalue()


VALID_JPEG = _jpeg(400, 240)


def _check_verdict(verdict: ImageFacts | Rejection) -> None:
    if isinstance(verdict, Rejection):
        assert verdict.reason and verdict.detail
        return
    assert LIMITS.min_width_px <= verdict.width <= LIMITS.max_width_px
    assert LIMITS.min_height_px <= verdict.height <= LIMITS.max_height_px
    assert 0 <= verdict.phash < 2**64


@SETTINGS
@given(st.binary(max_size=4000))
def test_any_bytes_get_a_verdict(data: bytes) -> None:
    """Arbitrary bytes are refused with a reason, never an exception."""
    _check_verdict(inspect_image(data, LIMITS))


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_JPEG) - 1), st.integers(0, 255)), max_size=8),
    st.integers(1, len(VALID_JPEG)),
)
def test_damaged_jpegs_get_a_verdict(changes: list[tuple[int, int]], length: int) -> None:
    """A JPEG with bytes changed (header sizes included) and cut anywhere gets a verdict."""
    data = bytearray(VALID_JPEG)
    for position, value in changes:
        data[position] = value
    _check_verdict(inspect_image(bytes(data[:length]), LIMITS))


@SETTINGS
@given(
    st.integers(1, 1200),
    st.integers(1, 700),
    st.sampled_from(["RGB", "L", "CMYK"]),
    st.booleans(),
)
def test_every_kind_of_jpeg_gets_a_verdict(
    width: int, height: int, mode: str, progressive: bool
) -> None:
    """Grey, colour and CMYK, baseline and progressive JPEGs of any size get a verdict."""
    data = _jpeg(width, height, mode, progressive=progressive)
    verdict = inspect_image(data, LIMITS)
    _check_verdict(verdict)
    big_enough = width >= LIMITS.min_width_px and height >= LIMITS.min_height_px
    assert isinstance(verdict, ImageFacts) == big_enough, verdict


HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
LABEL = st.text(alphabet=string.ascii_letters + string.digits + "-_.é ", min_size=1, max_size=40)
TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.timezones()
)


@st.composite
def entries(draw: st.DrawFn) -> FrameEntry:
    """A valid frame entry with values anywhere in their ranges."""
    return FrameEntry(
        frame_id=draw(HEX64),
        size_bytes=draw(st.integers(1, 20_000_000)),
        capture_time=draw(TIMES),
        lat=draw(st.floats(-90, 90)),
        lon=draw(st.floats(-180, 180)),
        altitude_m=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        heading_deg=draw(st.floats(0, 360, exclude_max=True)),
        speed_mps=draw(st.floats(0, 100)),
        hdop=draw(st.none() | st.floats(0, allow_nan=False, allow_infinity=False)),
        sequence_id=draw(LABEL),
        index=draw(st.integers(0, 2**31 - 1)),
        model_versions=draw(st.dictionaries(LABEL, LABEL, max_size=3)),
    )


@st.composite
def manifests(draw: st.DrawFn) -> BatchManifest:
    """A valid manifest of this test's device."""
    return BatchManifest(
        device_id=DEVICE,
        counter=draw(st.integers(1, 2**63 - 1)),
        created_at=draw(TIMES),
        frames=draw(st.lists(entries(), min_size=1, max_size=4)),
    )


@SETTINGS
@given(manifests(), st.data())
def test_signatures_survive_the_wire_and_catch_any_change(
    manifest: BatchManifest, data: st.DataObject
) -> None:
    """A signed manifest still verifies after the JSON round trip the server makes (and stores);
    any change to a signed field breaks the signature."""
    signed = sign(manifest, KEY)
    received = SignedManifest.model_validate_json(signed.model_dump_json())
    # Compared as signed bytes: times in a DST fold compare unequal across time zones.
    assert verify(received, KEY.public_key()).canonical() == manifest.canonical()
    frame = data.draw(st.integers(0, len(manifest.frames) - 1))
    field = data.draw(st.sampled_from(["lat", "index", "sequence_id", "capture_time"]))
    original = getattr(manifest.frames[frame], field)
    changed_value = data.draw(
        {
            "lat": st.floats(-90, 90),
            "index": st.integers(0, 2**31 - 1),
            "sequence_id": LABEL,
            "capture_time": TIMES,
        }[field].filter(lambda value: value != original)
    )
    frames = list(manifest.frames)
    frames[frame] = frames[frame].model_copy(update={field: changed_value})
    tampered = SignedManifest(
        manifest=manifest.model_copy(update={"frames": frames}), signature=signed.signature
    )
    with pytest.raises(ProtocolError):
        verify(tampered, KEY.public_key())


@SETTINGS
@given(JSON)
def test_any_json_is_a_manifest_or_a_validation_error(document: Any) -> None:
    """Parsing a body never fails with anything but a validation error."""
    with contextlib.suppress(ValidationError):
        SignedManifest.model_validate_json(json.dumps(document))


@SETTINGS
@given(
    st.dictionaries(st.text(max_size=30), st.text(max_size=100), max_size=5), st.binary(max_size=50)
)
def test_any_request_headers_verify_or_are_refused(headers: dict[str, str], body: bytes) -> None:
    """Arbitrary headers are a ProtocolError; the device's own signature verifies."""
    with pytest.raises(ProtocolError):
        verify_request(KEY.public_key(), "POST", "/v1/batches", body, headers)
    signed = sign_request(KEY, "POST", "/v1/batches", body, 1_780_000_000)
    assert verify_request(KEY.public_key(), "POST", "/v1/batches", body, signed) == 1_780_000_000
    with pytest.raises(ProtocolError):
        verify_request(KEY.public_key(), "POST", "/v1/uploads", body, signed)


SIGNER = LocalUploadSigner("property-test-upload-secret", "http://127.0.0.1:1")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FRAME = b"frame bytes"


def _ticket_fields() -> dict[str, str]:
    from hashlib import sha256

    item = UploadItem(frame_id=sha256(FRAME).hexdigest(), size_bytes=len(FRAME))
    key = f"frames/{DEVICE}/{item.frame_id}.jpg"
    return SIGNER.ticket(key, item, NOW + timedelta(minutes=15)).fields


@SETTINGS
@given(
    st.sampled_from(["key", "size", "sha256", "expires", "signature"]),
    st.text(max_size=80) | st.from_regex(r"frames/[0-9a-f]{4}/\.\./x\.jpg", fullmatch=True),
)
def test_upload_forms_cannot_be_bent(name: str, value: str) -> None:
    """The fields of a ticket allow exactly its frame under its key; any edited field, however
    garbled (non-ASCII, traversal, numbers out of range), is an UploadRefusedError."""
    fields = _ticket_fields()
    assert SIGNER.check(fields, FRAME, NOW) == fields["key"]
    if fields[name] == value:
        return
    with pytest.raises(UploadRefusedError):
        SIGNER.check({**fields, name: value}, FRAME, NOW)


@SETTINGS
@given(JSON)
def test_any_bucket_event_gives_keys(event: Any) -> None:
    """A webhook body of any shape gives a list of keys (possibly empty), never an exception."""
    keys = created_keys(event if isinstance(event, dict) else {"Records": event})
    assert all(isinstance(key, str) for key in keys)


@pytest.fixture(scope="module")
def store_root() -> Any:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@SETTINGS
@given(
    st.text(max_size=60) | st.from_regex(r"(\.\.?/|/|[a-z]{1,3}/){1,5}[a-z.]{0,5}", fullmatch=True)
)
def test_object_keys_never_leave_the_store(store_root: Path, key: str) -> None:
    """A key is refused, or it names a file inside the store's folder (no traversal)."""
    try:
        validate_key(key)
    except InvalidObjectKeyError as error:
        assert "key" in str(error)
        return
    store = LocalObjectStore(store_root / "objects")
    try:
        stored = store.put_bytes(key, b"x")
    except InvalidObjectKeyError:  # a segment longer than the file system allows
        return
    assert store.get_bytes(stored.key) == b"x"
    inside = (store_root / "objects").resolve()
    assert inside in (inside / key).resolve().parents


@SETTINGS
@given(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70))
def test_tile_addresses_exist_or_are_refused(z: int, x: int, y: int) -> None:
    """Any z/x/y is a tile of the pyramid or an error naming the valid range."""
    try:
        assert check_tile((z, x, y)) == (z, x, y)
    except MapError as error:
        assert "zoom" in str(error) or "run from" in str(error)
        return
    assert 0 <= x < 2**z and 0 <= y < 2**z


COORDINATE = st.floats() | st.integers() | st.text(max_size=3) | st.none()
RINGS = st.lists(st.lists(st.lists(COORDINATE, max_size=3), max_size=6), max_size=2)


@SETTINGS
@given(st.sampled_from(["Polygon", "MultiPolygon", "Point", None]), RINGS | JSON)
def test_query_polygons_are_checked(kind: str | None, coordinates: Any) -> None:
    """Any GeoJSON-like geometry is a valid polygon on the Earth, or a BadQueryError."""
    try:
        polygon = query_polygon({"type": kind, "coordinates": coordinates}, max_area_km2=100.0)
    except BadQueryError as error:
        assert str(error)
        return
    assert polygon.is_valid and not polygon.is_empty


@SETTINGS
@given(st.text(max_size=400))
def test_cursors_are_ours_or_refused(cursor: str) -> None:
    """Any cursor text resumes at an aware time or is a BadQueryError."""
    try:
        after, _ = decode_cursor(cursor)
    except BadQueryError:
        return
    assert after.tzinfo is not None


START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@st.composite
def tracks(draw: st.DrawFn) -> list[TrackPoint]:
    """A drive north at about 10 m/s with teleports, time travel and speed jumps mixed in."""
    points = []
    for index in range(draw(st.integers(1, 25))):
        t = index * 2.0 + draw(st.sampled_from([0.0, 0.0, 0.0, -30.0, 1e-3]))
        north = index * 20.0 + draw(st.sampled_from([0.0, 0.0, 0.0, 5000.0, -300.0]))
        speed = draw(st.sampled_from([10.0, 10.0, 10.0, 90.0, 0.0]))
        time = START + timedelta(seconds=t)
        points.append(TrackPoint(index, time, 60.0 + north / 111_320.0, 24.9, speed))
    return points


@SETTINGS
@given(tracks(), st.data())
def test_plausibility_verdicts_depend_only_on_earlier_points(
    points: list[TrackPoint], data: st.DataObject
) -> None:
    """Verdicts of a prefix are the verdicts of those points in the whole track (later batches
    never change them), and a point is rejected only with a named reason."""
    whole = implausible_points(points, LIMITS)
    cut = data.draw(st.integers(0, len(points)))
    prefix = implausible_points(points[:cut], LIMITS)
    assert prefix == {i: r for i, r in whole.items() if i < cut}
    assert all(
        r.reason in {"time_order", "teleport", "implausible_acceleration"} for r in whole.values()
    )
