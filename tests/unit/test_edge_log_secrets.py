"""Logs never carry keys or tokens: the filter every command's logging goes through masks the
device key, signatures, upload policies, tokens, passwords and the secret settings' values."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ingest.protocol import sign_request
from roadswarm.logs import MASK, SecretFilter, configure_logging, secret_values

FRAME_ID = "9c1aa05069923e47c40d5cd6b3536ac63db5556fc602d64a5a8f25b69022db9b"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler writes through the secret filter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(SecretFilter(("upload-secret-4f9a", "enrol-me-7c21")))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def test_keys_signatures_and_tokens_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """A PEM private key, signed request headers, an HMAC upload form, a presigned URL, a bearer
    token, a database password and the secret settings' values never reach the log; frame ids
    and ordinary words do."""
    logger, buffer = logged
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    headers = sign_request(key, "POST", "/v1/batches", b"{}", 1780293600)
    signature = headers["X-Roadswarm-Signature"]
    logger.warning("loaded %s", pem)
    logger.warning("request headers %s", headers)
    logger.warning('form {"key": "frames/d/%s.jpg", "signature": "f00dfeed99"}', FRAME_ID)
    logger.warning("PUT https://s3/b?X-Amz-Credential=AKIAX%%2F&X-Amz-Signature=abc123 done")
    logger.warning("Authorization: Bearer eyJhbGciOi.x.y")
    logger.warning("broker postgresql+psycopg://roadswarm:hunter2@db:5432/rs")
    logger.warning("the server said upload-secret-4f9a and enrol-me-7c21")
    text = buffer.getvalue()
    for secret in ("PRIVATE KEY", signature, "f00dfeed99", "abc123", "AKIAX", "eyJhbGciOi"):
        assert secret not in text
    for secret in ("hunter2", "upload-secret-4f9a", "enrol-me-7c21", pem.splitlines()[1]):
        assert secret not in text
    assert FRAME_ID in text and "request headers" in text and text.count(MASK) >= 8


def test_tracebacks_are_masked_too(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """An exception whose message holds a token is logged with the token masked."""
    logger, buffer = logged
    try:
        raise ValueError("registration refused for enrollment_token=enrol-me-7c21")
    except ValueError:
        logger.exception("register failed")
    assert "enrol-me-7c21" not in buffer.getvalue() and "ValueError" in buffer.getvalue()


def test_secret_settings_are_read_from_the_environment() -> None:
    """Values of *_SECRET, *_TOKEN, *_PASSWORD and *_SECRET_KEY settings are masked; short
    values and other settings are left alone."""
    env = {
        "ROADSWARM_UPLOAD_SECRET": "abcdefgh12",
        "ROADSWARM_ENROLLMENT_TOKEN": "tok-123456",
        "ROADSWARM_S3_SECRET_KEY": "minio-secret",
        "POSTGRES_PASSWORD": "x",
        "ROADSWARM_EDGE_API_URL": "https://ingest.example.org",
    }
    assert set(secret_values(env)) == {"abcdefgh12", "tok-123456", "minio-secret"}


def test_every_command_logs_through_the_filter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`configure_logging`, which the CLI calls first, masks on its handlers."""
    monkeypatch.setenv("ROADSWARM_UPLOAD_SECRET", "very-secret-value")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        logging.getLogger("roadswarm.test").info("secret is very-secret-value")
        assert capsys.readouterr().err.endswith(f"roadswarm.test: secret is {MASK}\n")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
