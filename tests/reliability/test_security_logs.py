"""Secrets never reach the servers' and workers' logs: a real Celery worker (whose logging Celery
sets up itself) and a real `roadswarm ingest serve` (whose request lines uvicorn writes) are given
secrets in every way a careless task or client can, and their logs are searched for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.db import Catalog
from ingest.queues import create_celery_app
from roadswarm.api_server import free_port
from roadswarm.logs import MASK, mask_secrets
from roadswarm.stack import WorkerProcess
from tests.edge_devices import REPO_ROOT
from tests.ingest_helpers import FakeDevice, require_redis
from tests.reliability.secret_tasks import LEAK_TASK

REDIS_URL = "redis://127.0.0.1:6379/4"  # this suite's database on the shared Redis
UPLOAD_SECRET = "upload-secret-3b7e91d2c4"
ENROLLMENT_TOKEN = "enrol-token-5a0c77e1f9"
NOTIFY_TOKEN = "notify-token-c2d94be613"


def _pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def test_a_workers_logs_mask_secrets(tmp_path: Path) -> None:
    """A task that logs, prints and raises with secrets leaves none of them in the worker's log,
    from its own logger, from Celery's report of its failure or from its stdout."""
    require_redis()
    marker, queue = f"leak-{uuid.uuid4().hex[:8]}", f"secrets-{uuid.uuid4().hex[:8]}"
    pem = _pem()
    secrets = {
        "setting": UPLOAD_SECRET,
        "bearer": "eyJhbGciOiJFZERTQSJ9.payload.sig",
        "pem": pem,
        "password": "hunter2-catalog",
        "api_key": "rs_0123456789ab_Q2hhbmdlTWVQbGVhc2VJdHNBU2VjcmV0",
        "token": "tok-9f8e7d6c5b4a",
    }
    env = {
        "ROADSWARM_TASK_MODULES": "tests.reliability.secret_tasks",
        "ROADSWARM_UPLOAD_SECRET": UPLOAD_SECRET,
    }
    worker = WorkerProcess(
        "roadswarm.worker_app",
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        workdir=tmp_path,
        queues=[queue],
        extra_env=env,
        python_path=[REPO_ROOT],
    )
    with worker:
        app = create_celery_app(REDIS_URL, REDIS_URL)
        result = app.send_task(LEAK_TASK, args=[marker, secrets], queue=queue)
        result.get(timeout=120, propagate=False)
        assert result.failed()
        time.sleep(0.5)  # the pool process's last lines reach the log
    text = worker.log_path.read_text()
    assert text.count(marker) >= 7, text[-3000:]
    leaked = [name for name, value in secrets.items() if value in text]
    leaked += ["pem body"] if pem.splitlines()[1] in text else []
    assert leaked == [], f"secrets in the worker log: {leaked}"
    assert MASK in text


def test_the_ingest_servers_logs_mask_secrets(tmp_path: Path) -> None:
    """`roadswarm ingest serve` logs each request line and each refusal; tokens a careless client
    puts in the query string, and the deployment's own secrets, are masked in both."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    Catalog.connect(url).dispose()  # migrated
    port = free_port()
    env = {
        **os.environ,
        "ROADSWARM_DATABASE_URL": url,
        "ROADSWARM_STORE_DIR": str(tmp_path / "store"),
        "ROADSWARM_UPLOAD_SECRET": UPLOAD_SECRET,
        "ROADSWARM_ENROLLMENT_TOKEN": ENROLLMENT_TOKEN,
        "ROADSWARM_NOTIFY_TOKEN": NOTIFY_TOKEN,
        "ROADSWARM_BROKER_URL": "",
    }
    command = [
        sys.executable,
        "-m",
        "roadswarm",
        "--log-level",
        "INFO",
        "ingest",
        "serve",
        "--port",
        str(port),
    ]
    log_path = tmp_path / "server.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        ) as server,
    ):
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(base)
            device = FakeDevice()
            body = {**device.registration(), "enrollment_token": "wrong-token-000"}
            refused = httpx.post(
                f"{base}/v1/devices?enrollment_token={ENROLLMENT_TOKEN}", json=body
            )
            assert refused.status_code == 403
            hook = httpx.post(
                f"{base}/v1/notifications/minio?token={NOTIFY_TOKEN}",
                json={"Records": []},
                headers={"Authorization": f"Bearer {NOTIFY_TOKEN}x"},
            )
            assert hook.status_code == 401
            key = "rs_0123456789ab_Q2hhbmdlTWVQbGVhc2VJdHNBU2VjcmV0"
            assert (
                httpx.get(f"{base}/healthz?key={key}&upload_secret={UPLOAD_SECRET}").status_code
                == 200
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    text = log_path.read_text()
    assert "POST /v1/devices?enrollment_token=" in text and "refused 403" in text, text
    assert "GET /healthz?key=rs_0123456789ab_" in text, text
    for secret in (
        ENROLLMENT_TOKEN,
        NOTIFY_TOKEN,
        UPLOAD_SECRET,
        "Q2hhbmdlTWVQbGVhc2VJdHNBU2VjcmV0",
    ):
        assert secret not in text, f"{secret} in the server log"


def _wait_for(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    msg = f"the server at {base} did not start"
    raise AssertionError(msg)


SECRET_TEXT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=8,
    max_size=40,
)
TEMPLATES = (
    "upload_secret={} sent",
    '{{"enrollment_token": "{}"}}',
    "{{'X-Roadswarm-Signature': '{}'}}",
    "Authorization: Bearer {}",
    "GET /v1/frames/ab/image.jpg?expires=1&sig={}",
    "redis://:{}@broker:6379/0",
    "GET /tiles/imagery/3/1/1.webp?key=rs_00112233aabb_{}",
    "form {{'policy': '{}', 'x-amz-signature': '{}'}}",
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(TEMPLATES), SECRET_TEXT)
def test_masking_leaves_no_secret_in_any_line(template: str, secret: str) -> None:
    """Whatever the secret's characters, each way a secret is written into a line is masked."""
    if "sig=" in template:
        secret = secret.encode().hex()
    line = template.format(secret, secret)
    assert secret not in mask_secrets(line), line
