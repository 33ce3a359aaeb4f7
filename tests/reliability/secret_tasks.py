"""A task that handles secrets carelessly, for the test that a real worker's logs mask them: it
logs them, prints them and fails with one in its error (loaded through ROADSWARM_TASK_MODULES)."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)
LEAK_TASK = "tests.leak_secrets"


def leak_secrets(marker: str, secrets: dict[str, str]) -> None:
    """Log, print and raise with each secret; `marker` shows the task ran."""
    log.warning("%s: settings secret %s", marker, secrets["setting"])
    log.warning("%s: headers {'Authorization': 'Bearer %s'}", marker, secrets["bearer"])
    log.warning("%s: loaded %s", marker, secrets["pem"])
    log.warning("%s: catalog at postgresql://roadswarm:%s@db/rs", marker, secrets["password"])
    log.warning("%s: map client asked /tiles/imagery/1/0/0.webp?key=%s", marker, secrets["api_key"])
    print(f"{marker}: printed {secrets['setting']}")  # a worker turns stdout into log records
    msg = f"{marker}: gave up with token={secrets['token']}"
    raise ValueError(msg)


leak_secrets_task = shared_task(name=LEAK_TASK)(leak_secrets)
