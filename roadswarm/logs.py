"""Logging configured in one place for every command, with secrets masked before any handler sees
them: private keys, request and upload signatures, policies, tokens, passwords, and the values of
the secret settings themselves wherever they appear."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# Settings whose values are secrets (ROADSWARM_UPLOAD_SECRET, ROADSWARM_ENROLLMENT_TOKEN, ...).
SECRET_SETTING = re.compile(r"(SECRET|SECRET_KEY|TOKEN|PASSWORD|PASSWD)$")
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words
_NAMES = (
    r"[\w-]*(?:signature|token|secret|password|passwd|policy|credential|proof|private_key)[\w-]*"
)
PATTERNS = (
    # PEM private keys (the device key) whole.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[private key]",
    ),
    # "name": "value" (JSON) and 'name': 'value' (Python reprs of headers and form fields).
    (re.compile(rf"""(["'])({_NAMES})\1(\s*:\s*)(["'])[^"']*\4""", re.I), rf"\1\2\1\3\4{MASK}\4"),
    # name=value (query strings, forms) and name: value (HTTP headers).
    (re.compile(rf"\b({_NAMES})(\s*[=:]\s*)(?![\"'])[^\s&,;]+", re.I), rf"\1\2{MASK}"),
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]+", re.I), rf"\1 {MASK}"),
    # user:password@ in URLs (database and broker URLs; Redis' have no user: redis://:pw@host).
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), rf"\1{MASK}@"),
    # Consumer API keys (rs_<id>_<secret>, also sent as ?key=): the id may be shown, never the rest.
    (re.compile(r"\b(rs_[0-9a-f]{12}_)[\w-]+"), rf"\1{MASK}"),
    # The HMAC of a signed image URL (?sig=): a capability until it expires.
    (re.compile(r"\b(sig=)[0-9a-fA-F]{16,}"), rf"\1{MASK}"),
)


def mask_secrets(text: str, values: tuple[str, ...] = ()) -> str:
    """`text` with every known secret value and every secret-looking field masked."""
    for value in values:
        text = text.replace(value, MASK)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secret_values(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The values of secret settings in the environment, longest first."""
    env = os.environ if environ is None else environ
    found = {v for k, v in env.items() if SECRET_SETTING.search(k) and len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(found, key=len, reverse=True))


class SecretFilter(logging.Filter):
    """Masks secrets in each record's message and traceback before it is written."""

    def __init__(self, values: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.values = secret_values() if values is None else values

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: keep the raw text
            message = f"{record.msg} {record.args}"
        record.msg = mask_secrets(message, self.values)
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = mask_secrets(text, self.values), None
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, self.values)
        return True


def configure_logging(level: str = "WARNING") -> None:
    """Send log records of the given level and above to stderr, once per process, secrets masked."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    mask_handlers(logging.getLogger())
    # Third-party libraries are chatty at INFO; keep them at WARNING unless debugging.
    if level.upper() != "DEBUG":
        for noisy in ("celery", "kombu", "amqp", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def server_log_config() -> dict[str, Any]:
    """uvicorn's logging, as `uvicorn.run(log_config=...)` takes it: its request lines (paths
    and queries) and errors (tracebacks) go through the secret filter, in this module's format."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["secrets"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"secrets": {"()": "roadswarm.logs.SecretFilter"}},
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr"},
            "access": {**handler, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def mask_handlers(logger: logging.Logger) -> None:
    """Put the secret filter on every handler of `logger` (for handlers others installed, such as
    the ones a Celery worker puts in place of ours)."""
    masking = SecretFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(masking)
