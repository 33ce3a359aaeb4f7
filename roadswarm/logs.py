"""Logging configured in one place for every command."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "WARNING") -> None:
    """Send log records of the given level and above to stderr, once per process."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    # Third-party libraries are chatty at INFO; keep them at WARNING unless debugging.
    if level.upper() != "DEBUG":
        for noisy in ("celery", "kombu", "amqp", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
