"""The device's identity: an ed25519 key pair; the private key never leaves the device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from edge.errors import EdgeError
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
    private_path = folder / PRIVATE_KEY
    if private_path.exists():
        msg = f"{private_path} already exists: this device has an identity (delete it only to retire the device)"
        raise IdentityError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tmp = folder / f".{PRIVATE_KEY}.tmp"
    # Created with mode 600 from the start: no moment where another user could read it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(private_path)
    identity = Identity(key)
    (folder / PUBLIC_KEY).write_text(identity.public_pem())
    return identity


def load_identity(folder: Path) -> Identity:
    """The device's key pair; refused if the private key is readable by group or others."""
    path = folder / PRIVATE_KEY
    try:
        if path.stat().st_mode & 0o077:
            msg = f"{path} is readable by other users: run `chmod 600 {path}`"
            raise IdentityError(msg)
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        msg = f"no device key in {folder}: run `roadswarm edge init` first"
        raise IdentityError(msg) from exc
    except (OSError, ValueError, TypeError) as exc:
        msg = f"cannot read the device key {path} ({exc}): restore it from backup or retire the device"
        raise IdentityError(msg) from exc
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{path} is not an ed25519 key"
        raise IdentityError(msg)
    return Identity(key)
