"""The upload protocol shared by the edge app and the ingest API: frame records, batch manifests,
and their ed25519 signatures over a canonical encoding.

Importable on a device: pydantic and cryptography only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field

from ingest.errors import IngestError

PROTOCOL_VERSION = 1
SHA256_HEX = r"^[0-9a-f]{64}$"


class ProtocolError(IngestError):
    """A manifest that is malformed, not signed by the key it names, or tampered with."""


class FrameEntry(BaseModel):
    """One keyframe in a batch: its id (sha256 of the JPEG), size, and what it shows where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_id: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(gt=0, le=20_000_000)
    capture_time: datetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude_m: float | None = None
    heading_deg: float = Field(ge=0, lt=360)
    speed_mps: float = Field(ge=0, le=100)
    hdop: float | None = Field(default=None, ge=0)
    sequence_id: str = Field(min_length=1, max_length=200)
    index: int = Field(ge=0)
    model_versions: dict[str, str]


class BatchManifest(BaseModel):
    """A device's batch: its counter only ever increases, so a replayed or reordered manifest is
    recognisable by the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: int = PROTOCOL_VERSION
    device_id: str = Field(pattern=SHA256_HEX)
    counter: int = Field(ge=1)
    created_at: datetime
    frames: list[FrameEntry] = Field(min_length=1, max_length=1000)

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no whitespace, ISO times."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


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
