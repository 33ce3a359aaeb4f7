"""The operator's ed25519 key, which signs every epoch result.

Kept like a device key (`ingest.keyfile`, shared with `edge.identity`): created with mode 600 from
the first byte, never replaced, refused when others can read it.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ingest.keyfile import (
    KeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    read_private_key,
    write_new_private_key,
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
    try:
        key = write_new_private_key(folder / PRIVATE_KEY)
    except KeyFileExistsError as exc:
        msg = f"{exc}: the operator key is never replaced (epochs are signed with it)"
        raise OperatorKeyError(msg) from exc
    public = public_hex(key.public_key())
    (folder / PUBLIC_KEY).write_text(public + "\n")
    return public


def load_operator_key(folder: Path) -> Ed25519PrivateKey:
    """The operator's private key; refused if group or others can read it."""
    hint = "restore it from its backup"
    try:
        return read_private_key(folder / PRIVATE_KEY, unreadable_hint=hint)
    except KeyFileMissingError as exc:
        msg = f"no operator key in {folder}: run `roadswarm rewards operator-key init` first"
        raise OperatorKeyError(msg) from exc
    except KeyFileError as exc:
        raise OperatorKeyError(str(exc)) from exc


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
