"""The operator's ed25519 key, which signs every epoch result.

Kept like a device key (`edge/identity.py`, which `rewards` may not import): created with mode 600
from the first byte, never replaced, refused when others can read it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from rewards.errors import OperatorKeyError

PRIVATE_KEY = "operator.key"
PUBLIC_KEY = "operator.pub"
EPOCH_DOMAIN = b"roadswarm-epoch-result-v1\x00"


def public_hex(key: Ed25519PublicKey) -> str:
    """The raw public key as hex (as device keys are written)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def create_operator_key(folder: Path) -> str:
    """A new operator key in `folder` (private part mode 600); its public key as hex."""
    path = folder / PRIVATE_KEY
    if path.exists():
        msg = (
            f"{path} already exists: the operator key is never replaced (epochs are signed with it)"
        )
        raise OperatorKeyError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    tmp = folder / f".{PRIVATE_KEY}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    public = public_hex(key.public_key())
    (folder / PUBLIC_KEY).write_text(public + "\n")
    return public


def load_operator_key(folder: Path) -> Ed25519PrivateKey:
    """The operator's private key; refused if group or others can read it."""
    path = folder / PRIVATE_KEY
    try:
        if path.stat().st_mode & 0o077:
            msg = f"{path} is readable by other users: run `chmod 600 {path}`"
            raise OperatorKeyError(msg)
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        msg = f"no operator key in {folder}: run `roadswarm rewards operator-key init` first"
        raise OperatorKeyError(msg) from exc
    except (OSError, ValueError, TypeError) as exc:
        msg = f"cannot read the operator key {path} ({exc}): restore it from its backup"
        raise OperatorKeyError(msg) from exc
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{path} is not an ed25519 key: create one with `roadswarm rewards operator-key init`"
        raise OperatorKeyError(msg)
    return key


def sign_epoch(key: Ed25519PrivateKey, body: bytes) -> str:
    """The base64 signature of an epoch result's canonical body."""
    return base64.b64encode(key.sign(EPOCH_DOMAIN + body)).decode()


def epoch_signature_valid(public_key_hex: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the key's over this epoch body."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(base64.b64decode(signature, validate=True), EPOCH_DOMAIN + body)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
