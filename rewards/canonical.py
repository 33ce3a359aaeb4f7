"""Canonical JSON and domain-separated SHA-256: the byte encodings the ledger hashes and signs.

The same style as `ingest.protocol` (sorted keys, no whitespace, ASCII), so one rule covers every
signed document of the project. Amounts are integers written as strings, never floats: JSON
readers in other languages lose precision above 2**53.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """The exact bytes that are hashed or signed for `value` (floats refused: use strings)."""
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _refuse_floats(value: Any) -> None:
    """Floats print differently across languages and versions: nothing signed may hold one."""
    if isinstance(value, float):
        msg = f"float {value!r} in a canonical document: write it as a string or an integer"
        raise TypeError(msg)
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def tagged_sha256(domain: bytes, *parts: bytes) -> bytes:
    """SHA-256 of a domain tag and the parts: a hash made for one purpose never verifies another."""
    digest = hashlib.sha256(domain + b"\x00")
    for part in parts:
        digest.update(part)
    return digest.digest()


def decimal_string(value: float, places: int = 6) -> str:
    """A float as a fixed-point string (for points shown in signed records)."""
    return f"{value:.{places}f}"
