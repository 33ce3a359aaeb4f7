"""Key files shared by device identities and the operator key: mode 600, never replaced, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from edge.identity import IdentityError, load_identity
from ingest.keyfile import (
    KeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    read_private_key,
    write_new_private_key,
)
from rewards.errors import OperatorKeyError
from rewards.operator import create_operator_key, load_operator_key

HINT = "restore it"


def test_a_new_key_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k.key"
    key = write_new_private_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob(".*.tmp"))
    assert (
        read_private_key(path, unreadable_hint=HINT).private_bytes_raw() == key.private_bytes_raw()
    )


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_new_private_key(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileExistsError):
        write_new_private_key(path)
    assert path.read_bytes() == before


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_new_private_key(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_private_key(path, unreadable_hint=HINT)


@pytest.mark.parametrize(
    "content",
    [
        b"not a key",
        b"",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ),
    ],
    ids=["garbage", "empty", "ec-key"],
)
def test_a_file_that_is_not_an_ed25519_key_says_what_to_do(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=HINT):
        read_private_key(path, unreadable_hint=HINT)


def test_a_missing_key_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissingError):
        read_private_key(tmp_path / "absent.key", unreadable_hint=HINT)


def test_device_and_operator_keys_name_their_own_command(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="roadswarm edge init"):
        load_identity(tmp_path)
    with pytest.raises(OperatorKeyError, match="operator-key init"):
        load_operator_key(tmp_path)
    create_operator_key(tmp_path)
    with pytest.raises(OperatorKeyError, match="never replaced"):
        create_operator_key(tmp_path)
