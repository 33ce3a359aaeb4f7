"""Ed25519 private key files, as devices and the operator keep them.

A key file is created with mode 600 from its first byte (no instant when another user could read
it), written through a temporary file and renamed, and never replaced. Reading refuses a file that
group or others can read. The device identity (`edge.identity`) and the operator's epoch key
(`rewards.operator`) both keep their keys this way; their modules add what each key is for.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)


class KeyFileError(Exception):
    """The key file cannot be used; the message says why and what to do."""


class KeyFileMissingError(KeyFileError):
    """There is no key file at that path."""


class KeyFileExistsError(KeyFileError):
    """A key file is already there (keys are never replaced)."""


def write_new_private_key(path: Path) -> Ed25519PrivateKey:
    """A new key written to `path` with mode 600; refused if `path` exists."""
    if path.exists():
        raise KeyFileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return key


def read_private_key(path: Path, *, unreadable_hint: str) -> Ed25519PrivateKey:
    """The ed25519 key in `path`; refused if group or others can read it.

    `unreadable_hint` ends the message for a file that exists but cannot be read or parsed
    (for example "restore it from its backup").
    """
    try:
        if path.stat().st_mode & 0o077:
            raise KeyFileError(f"{path} is readable by other users: run `chmod 600 {path}`")
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise KeyFileMissingError(f"no key file at {path}") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read the key {path} ({exc}): {unreadable_hint}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an ed25519 key: {unreadable_hint}")
    return key
