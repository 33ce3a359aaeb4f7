"""The upload protocol shared by the edge app and the ingest API: frame records, batch manifests,
and their ed25519 signatures over a canonical encoding.

Importable on a device: pydantic and cryptography only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from ingest.errors import IngestError

PROTOCOL_VERSION = 1
SHA256_HEX = r"^[0-9a-f]{64}$"
# The catalog's column limits: INTEGER for sequence indices, BIGINT for batch counters.
MAX_INDEX = 2**31 - 1
MAX_COUNTER = 2**63 - 1
# Metres along one trip: 20,000 km is a week of driving without a stop; more is a corrupted value.
MAX_TRAVELLED_M = 20_000_000.0
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# No control characters (PostgreSQL cannot store NUL) and, since a pattern is checked, no lone
# surrogates (no database can encode them).
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


def _within_range(value: datetime) -> datetime:
    """A time the catalog can store and compare: between 1970 and 2200, in UTC."""
    try:
        inside = EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:  # an offset that pushes year 1 or 9999 out of range
        inside = False
    if not inside:
        msg = f"{value.isoformat()} is not between {EARLIEST.year} and {LATEST.year} (UTC): set the clock from GNSS"
        raise ValueError(msg)
    return value


ProtocolTime = Annotated[AwareDatetime, AfterValidator(_within_range)]


def _distance_along_trip(value: float) -> float:
    """Metres along the trip: from 0 (the trip's start) up to `MAX_TRAVELLED_M`."""
    if not 0.0 <= value <= MAX_TRAVELLED_M:
        msg = (
            f"travelled_m {value:g} is not a distance along the trip: send the metres driven "
            f"since the trip began (0 to {MAX_TRAVELLED_M:g}), from the device's odometry, "
            "or leave it out"
        )
        raise ValueError(msg)
    return value


TravelledM = Annotated[float, AfterValidator(_distance_along_trip)]


class ProtocolError(IngestError):
    """A manifest that is malformed, not signed by the key it names, or tampered with."""


class CameraCalibration(BaseModel):
    """How a device's camera sees the road: OpenCV's pinhole model (camera matrix and the
    k1, k2, p1, p2, k3 distortion of a `width_px` x `height_px` image) and its mounting. Map tiles
    are projected with it; frames without one are kept but cannot be stitched."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    width_px: int = Field(gt=0, le=16_384)
    height_px: int = Field(gt=0, le=16_384)
    camera_matrix: tuple[
        tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]
    ]
    dist_coeffs: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    mount_height_m: float = Field(gt=0.2, le=5.0)
    pitch_deg: float = Field(ge=-45, le=45)
    roll_deg: float = Field(ge=-20, le=20)

    def camera_id(self) -> str:
        """The calibration's sha256 over its canonical JSON: the same camera, the same id."""
        return hashlib.sha256(_canonical(self.model_dump(mode="json"))).hexdigest()


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class FrameEntry(BaseModel):
    """One keyframe in a batch: its id (sha256 of the JPEG), size, and what it shows where."""

    # Not a number or infinite: no reading a receiver gives, and it would poison scoring.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    frame_id: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(gt=0, le=20_000_000)
    capture_time: ProtocolTime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude_m: float | None = None
    heading_deg: float = Field(ge=0, lt=360)
    speed_mps: float = Field(ge=0, le=100)
    hdop: float | None = Field(default=None, ge=0)
    sequence_id: Label
    index: int = Field(ge=0, le=MAX_INDEX)
    model_versions: dict[Label, Label] = Field(max_length=16)
    # Which of the manifest's `cameras` took the frame (None: no calibration known).
    camera_id: str | None = Field(default=None, pattern=SHA256_HEX)
    # Metres driven since the trip began at this keyframe, by the device's own odometry (Doppler
    # speed integrated over every fix): it never decreases along a sequence, and it pins the
    # distance between keyframes far better than positions do. None: an older device.
    travelled_m: TravelledM | None = None


# Frame fields added after protocol version 1: left out of the signed bytes while None.
_LATER_FRAME_FIELDS = ("camera_id", "travelled_m")


class BatchManifest(BaseModel):
    """A device's batch: its counter only ever increases, so a replayed or reordered manifest is
    recognisable by the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: int = PROTOCOL_VERSION
    device_id: str = Field(pattern=SHA256_HEX)
    counter: int = Field(ge=1, le=MAX_COUNTER)
    created_at: ProtocolTime
    frames: list[FrameEntry] = Field(min_length=1, max_length=1000)
    cameras: dict[str, CameraCalibration] = Field(default_factory=dict, max_length=16)

    @model_validator(mode="after")
    def _cameras_match(self) -> BatchManifest:
        """Every camera is keyed by its own id, and every frame's camera is in the manifest."""
        for key, camera in self.cameras.items():
            if camera.camera_id() != key:
                msg = f"camera {key[:12]} is keyed by another id than its calibration's sha256"
                raise ValueError(msg)
        unknown = {f.camera_id for f in self.frames if f.camera_id} - set(self.cameras)
        if unknown:
            msg = f"frames name camera(s) {', '.join(sorted(c[:12] for c in unknown))} the manifest lacks"
            raise ValueError(msg)
        return self

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no whitespace, ISO times. Fields added
        after version 1 are left out while empty, so manifests signed before them still verify."""
        data: dict[str, Any] = self.model_dump(mode="json")
        if not data["cameras"]:
            del data["cameras"]
        for frame in data["frames"]:
            for name in _LATER_FRAME_FIELDS:
                if frame[name] is None:
                    del frame[name]
        return _canonical(data)


class SignedManifest(BaseModel):
    """A manifest and the base64 ed25519 signature of its canonical bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest: BatchManifest
    signature: str


def device_id_for(key: Ed25519PublicKey) -> str:
    """A device is named by the sha256 of its raw public key."""
    raw: bytes = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(manifest: BatchManifest, key: Ed25519PrivateKey) -> SignedManifest:
    """Sign a manifest with the device's private key, which must be the one its id names."""
    if device_id_for(key.public_key()) != manifest.device_id:
        msg = "the manifest names another device than the key signing it"
        raise ProtocolError(msg)
    signature = base64.b64encode(key.sign(manifest.canonical())).decode()
    return SignedManifest(manifest=manifest, signature=signature)


def verify(signed: SignedManifest, key: Ed25519PublicKey) -> BatchManifest:
    """The manifest, if `key` is its device's and the signature covers exactly these contents."""
    if device_id_for(key) != signed.manifest.device_id:
        msg = "the manifest names a device other than the key it is checked with"
        raise ProtocolError(msg)
    try:
        key.verify(base64.b64decode(signed.signature, validate=True), signed.manifest.canonical())
    except (InvalidSignature, ValueError) as exc:
        msg = f"the signature of batch {signed.manifest.counter} does not match its contents: refuse it"
        raise ProtocolError(msg) from exc
    return signed.manifest


# --- Device requests -------------------------------------------------------------------------
# Every request a device makes is signed with its key over the method, the path with its query,
# the time and the sha256 of the body, so a captured request cannot be altered, and can be replayed
# only within the allowed clock skew (the batch counter makes replaying a commit harmless).

DEVICE_HEADER = "X-Roadswarm-Device"
TIME_HEADER = "X-Roadswarm-Time"
SIGNATURE_HEADER = "X-Roadswarm-Signature"
REQUEST_DOMAIN = b"roadswarm-request-v1"
REGISTRATION_DOMAIN = b"roadswarm-register-v1"


def request_payload(method: str, path: str, timestamp: int, body: bytes) -> bytes:
    """The bytes a device signs for one request."""
    parts = (method.upper(), path, str(timestamp), hashlib.sha256(body).hexdigest())
    return b"\n".join([REQUEST_DOMAIN, *(part.encode() for part in parts)])


def sign_request(
    key: Ed25519PrivateKey, method: str, path: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The headers that authenticate a request of this device."""
    signature = key.sign(request_payload(method, path, timestamp, body))
    return {
        DEVICE_HEADER: device_id_for(key.public_key()),
        TIME_HEADER: str(timestamp),
        SIGNATURE_HEADER: base64.b64encode(signature).decode(),
    }


def verify_request(
    key: Ed25519PublicKey, method: str, path: str, body: bytes, headers: dict[str, str]
) -> int:
    """Check a request's signature; return its timestamp (the caller checks the clock skew).

    Header names are compared case-insensitively, as HTTP says."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(lowered[TIME_HEADER.lower()])
        signature = base64.b64decode(lowered[SIGNATURE_HEADER.lower()], validate=True)
        key.verify(signature, request_payload(method, path, timestamp, body))
    except KeyError as exc:
        msg = f"the request has no {exc.args[0]!r} header: sign it with the device key"
        raise ProtocolError(msg) from exc
    except (InvalidSignature, ValueError) as exc:
        msg = "the request signature does not match the device key, path, time or body"
        raise ProtocolError(msg) from exc
    return timestamp


def registration_proof(key: Ed25519PrivateKey) -> str:
    """Proof that whoever registers a public key holds its private key (base64 signature)."""
    payload = REGISTRATION_DOMAIN + b"\n" + device_id_for(key.public_key()).encode()
    return base64.b64encode(key.sign(payload)).decode()


def public_key_hex(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key as hex, as devices register it."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def load_public_key(hex_key: str) -> Ed25519PublicKey:
    """A public key from its raw hex form; `ProtocolError` when it is not 32 bytes of hex."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))
    except ValueError as exc:
        msg = "the public key must be 64 hex characters (a raw ed25519 key)"
        raise ProtocolError(msg) from exc


def check_registration(public_key: Ed25519PublicKey, proof: str) -> str:
    """The device id of a registration whose proof is valid; `ProtocolError` otherwise."""
    device_id = device_id_for(public_key)
    payload = REGISTRATION_DOMAIN + b"\n" + device_id.encode()
    try:
        public_key.verify(base64.b64decode(proof, validate=True), payload)
    except (InvalidSignature, ValueError) as exc:
        msg = "the registration proof is not a signature of this device id by this key"
        raise ProtocolError(msg) from exc
    return device_id


# --- API bodies ------------------------------------------------------------------------------


class Registration(BaseModel):
    """A device announcing its public key, with proof it holds the private one."""

    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    proof: str = Field(max_length=200)
    enrollment_token: str | None = Field(default=None, max_length=200)


class UploadItem(BaseModel):
    """A frame the device wants to upload: its id and exact size."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(gt=0, le=20_000_000)


class UploadRequest(BaseModel):
    """The frames a device asks upload URLs for (at most one batch's worth)."""

    model_config = ConfigDict(extra="forbid")

    frames: list[UploadItem] = Field(min_length=1, max_length=1000)


class UploadTicket(BaseModel):
    """Where and how to upload one frame: a multipart POST of `fields`, then the file as `file`."""

    frame_id: str
    key: str
    url: str
    fields: dict[str, str]
    expires_at: datetime
    # The store already holds these exact bytes (a retry after a crash): nothing to send.
    already_uploaded: bool = False


class UploadTickets(BaseModel):
    """The API's answer to an `UploadRequest`."""

    tickets: list[UploadTicket]


class CommitReceipt(BaseModel):
    """The API's acknowledgement of a committed batch; repeated for a batch committed already."""

    device_id: str
    counter: int
    frames: int
    already_committed: bool


def frame_object_key(device_id: str, frame_id: str) -> str:
    """Where a device's frame is stored: inside its own prefix, named by its content."""
    return f"frames/{device_id}/{frame_id}.jpg"


class EarningLine(BaseModel):
    """One reason's part of an epoch's allocation, in base units (9 decimals) as strings."""

    reason: str
    amount: str
    driver: str
    fleet_manager: str


class EpochEarning(BaseModel):
    """A device's allocation in one closed epoch, and where it sits in the signed root."""

    epoch: str
    gross: str
    cumulative: str
    driver: str
    fleet_manager: str
    fleet_manager_payee: str | None
    split_bp: int
    allocations: list[EarningLine]
    allocation_root: str
    leaf_index: int
    proof: list[dict[str, str]]
    record_hash: str
    operator_key: str
    signature: str


class DeviceEarnings(BaseModel):
    """`GET /v1/devices/me/earnings`: the calling device's allocations per closed epoch, newest
    first (amounts in base units of 9 decimals, as strings)."""

    device_id: str
    decimals: int
    epochs_closed: int
    last_closed_epoch: str | None
    total_gross: str
    total_driver: str
    epochs: list[EpochEarning]
