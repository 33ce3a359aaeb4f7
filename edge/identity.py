"""The device's identity: an ed25519 key pair; the private key never leaves the device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.errors import EdgeError
from ingest.keyfile import (
    KeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    read_private_key,
    write_new_private_key,
)
from ingest.protocol import device_id_for

PRIVATE_KEY = "device.key"
PUBLIC_KEY = "device.pub"


class IdentityError(EdgeError):
    """The device key is missing, unreadable, readable by others, or would be overwritten."""


@dataclass(frozen=True)
class Identity:
    """The key pair and the id derived from it."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def device_id(self) -> str:
        return device_id_for(self.public_key)

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        ).decode()


def create_identity(folder: Path) -> Identity:
    """A new key pair in `folder`, the private key readable by its owner only (mode 600).

    An existing key is never replaced: a new identity would orphan everything the old one sent.
    """
    try:
        key = write_new_private_key(folder / PRIVATE_KEY)
    except KeyFileExistsError as exc:
        msg = f"{exc}: this device has an identity (delete it only to retire the device)"
        raise IdentityError(msg) from exc
    identity = Identity(key)
    (folder / PUBLIC_KEY).write_text(identity.public_pem())
    return identity


def load_identity(folder: Path) -> Identity:
    """The device's key pair; refused if the private key is readable by group or others."""
    hint = "restore it from backup or retire the device"
    try:
        return Identity(read_private_key(folder / PRIVATE_KEY, unreadable_hint=hint))
    except KeyFileMissingError as exc:
        msg = f"no device key in {folder}: run `roadswarm edge init` first"
        raise IdentityError(msg) from exc
    except KeyFileError as exc:
        raise IdentityError(str(exc)) from exc
