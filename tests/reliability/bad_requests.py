"""Malformed, forged and replayed requests to the ingest API: registrations, upload tickets,
upload forms, batch commits and bucket notifications. Each case sends its request through a
`Session` (a registered device on a served API) and gets the answer back."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from ingest.catalog import utcnow
from ingest.protocol import UploadItem, UploadRequest, frame_object_key
from tests.ingest_helpers import FakeDevice, Harness, frame_id, make_jpeg
from tests.reliability.bad_corpus import BadCase

ENROLLMENT_TOKEN = "fleet-enrolment-token-1"
NOTIFY_TOKEN = "bucket-notify-token-1"
NOT_UTF8 = b'{"proof": "\x80\xff"}'
REFUSED = "refusal logged (INFO, with the device); request counted in /metrics by route and status"
Send = Callable[["Session"], httpx.Response]


@dataclass
class Session:
    """A registered device (and another one) on a served API, and what requests need."""

    api: Harness
    device: FakeDevice
    other: FakeDevice
    seeds: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    uploaded: set[str] = field(default_factory=set)  # object keys stored
    committed: set[str] = field(default_factory=set)  # frame ids cataloged

    def frame(self) -> bytes:
        """A new JPEG no device sent before."""
        return make_jpeg(next(self.seeds))

    def upload(self, data: bytes, by: FakeDevice | None = None) -> None:
        """Upload `data` properly, and remember it is stored."""
        device = by or self.device
        self.api.upload(device, [data])
        self.uploaded.add(frame_object_key(device.device_id, frame_id(data)))

    def commit_good(self, by: FakeDevice | None = None) -> httpx.Response:
        """Upload and commit two new frames properly (what must keep working)."""
        device = by or self.device
        frames = [self.frame(), self.frame()]
        for data in frames:
            self.upload(data, device)
        answer = self.commit(
            device.manifest(device.entries(frames, sequence_id="good")).model_dump_json().encode(),
            by=device,
        )
        assert answer.status_code == 201, answer.text
        self.committed.update(frame_id(data) for data in frames)
        return answer

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.api.http.post(path, content=body, headers=headers or {})

    def signed(
        self, path: str, body: bytes, *, by: FakeDevice | None = None, at: float | None = None
    ) -> httpx.Response:
        """POST `body` signed by `by` (default: the device) at time `at` (default: now)."""
        headers = (by or self.device).headers("POST", path, body, at=at)
        return self.post(path, body, headers)

    def ticket(self, data: bytes) -> dict[str, Any]:
        """A fresh upload ticket for `data`."""
        body = UploadRequest(frames=[UploadItem(frame_id=frame_id(data), size_bytes=len(data))])
        answer = self.signed("/v1/uploads", body.model_dump_json().encode())
        assert answer.status_code == 200, answer.text
        ticket: dict[str, Any] = answer.json()["tickets"][0]
        return ticket

    def form(self, data: bytes, *, send: bytes | None = None, **fields: str) -> httpx.Response:
        """Upload `send` (default `data`) with `data`'s ticket, some fields changed."""
        ticket = self.ticket(data)
        return httpx.post(
            ticket["url"],
            data={**ticket["fields"], **fields},
            files={"file": ("f.jpg", send or data)},
        )

    def manifest(self, **changes: Any) -> dict[str, Any]:
        """The JSON of a signed manifest of one uploaded frame, fields of its frame changed
        after signing (so a change of type or range is judged before the signature)."""
        data = self.frame()
        self.upload(data)
        signed: dict[str, Any] = json.loads(
            self.device.manifest(self.device.entries([data])).model_dump_json()
        )
        signed["manifest"]["frames"][0].update(changes)
        return signed

    def commit(self, body: bytes, *, by: FakeDevice | None = None) -> httpx.Response:
        return self.signed("/v1/batches", body, by=by)


def _case(entry: str, name: str, status: int, says: str, send: Send) -> BadCase:
    return BadCase(entry, name, says, REFUSED, send, status)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


REGISTER = "ingest API: registration"


def _registration(s: Session, **changes: Any) -> httpx.Response:
    device = FakeDevice()
    body = {**device.registration(), "enrollment_token": ENROLLMENT_TOKEN, **changes}
    return s.post("/v1/devices", _json(body), {"content-type": "application/json"})


REGISTRATION_CASES = [
    _case(
        REGISTER,
        "public key not hex",
        422,
        "public_key",
        lambda s: _registration(s, public_key="zz" * 32),
    ),
    _case(
        REGISTER,
        "proof made by another key",
        401,
        "registration proof",
        lambda s: _registration(s, proof=FakeDevice().registration()["proof"]),
    ),
    _case(
        REGISTER,
        "no enrolment token",
        403,
        "enrolment token",
        lambda s: _registration(s, enrollment_token=None),
    ),
    _case(
        REGISTER,
        "non-ASCII enrolment token",
        403,
        "enrolment token",
        lambda s: _registration(s, enrollment_token="fleet-é"),
    ),
    _case(
        REGISTER,
        "body not UTF-8",
        400,
        "JSON in UTF-8",
        lambda s: s.post("/v1/devices", NOT_UTF8, {"content-type": "application/json"}),
    ),
    _case(
        REGISTER,
        "JSON nested 100 000 deep",
        400,
        "JSON in UTF-8",
        lambda s: s.post(
            "/v1/devices", b"[" * 100_000 + b"]" * 100_000, {"content-type": "application/json"}
        ),
    ),
    _case(
        REGISTER,
        "5 MB body",
        413,
        "limited to",
        lambda s: s.post("/v1/devices", b" " * 5_000_000, {"content-type": "application/json"}),
    ),
]

TICKETS = "ingest API: upload tickets"


def _tickets_body(**item: Any) -> bytes:
    data = make_jpeg(1)
    return _json({"frames": [{"frame_id": frame_id(data), "size_bytes": len(data), **item}]})


def _unsigned(s: Session) -> httpx.Response:
    return s.post("/v1/uploads", _tickets_body(), {"content-type": "application/json"})


def _forged(s: Session) -> httpx.Response:
    body = _tickets_body()
    headers = s.device.headers("POST", "/v1/uploads", body)
    headers["X-Roadswarm-Signature"] = s.other.headers("POST", "/v1/uploads", body)[
        "X-Roadswarm-Signature"
    ]
    return s.post("/v1/uploads", body, headers)


def _other_body(s: Session) -> httpx.Response:
    headers = s.device.headers("POST", "/v1/uploads", _tickets_body())
    return s.post("/v1/uploads", _tickets_body(size_bytes=5), headers)


TICKET_CASES = [
    _case(TICKETS, "unsigned request", 401, "names no registered device", _unsigned),
    _case(
        TICKETS,
        "signed by an unregistered key",
        401,
        "names no registered device",
        lambda s: s.signed("/v1/uploads", _tickets_body(), by=FakeDevice()),
    ),
    _case(TICKETS, "signature forged with another key", 401, "does not match", _forged),
    _case(
        TICKETS,
        "signature replayed 10 minutes later",
        401,
        "from the server's time",
        lambda s: s.signed("/v1/uploads", _tickets_body(), at=time.time() - 600),
    ),
    _case(TICKETS, "signature of another body", 401, "does not match", _other_body),
    _case(
        TICKETS,
        "path traversal as frame id",
        422,
        "frame_id",
        lambda s: s.signed("/v1/uploads", _tickets_body(frame_id="../../../etc/passwd")),
    ),
    _case(
        TICKETS,
        "frame of 30 MB",
        422,
        "size_bytes",
        lambda s: s.signed("/v1/uploads", _tickets_body(size_bytes=30_000_000)),
    ),
    _case(
        TICKETS,
        "size as text",
        422,
        "size_bytes",
        lambda s: s.signed("/v1/uploads", _tickets_body(size_bytes="big")),
    ),
    _case(
        TICKETS,
        "1001 frames at once",
        422,
        "frames",
        lambda s: s.signed(
            "/v1/uploads", _json({"frames": [{"frame_id": "0" * 64, "size_bytes": 1}] * 1001})
        ),
    ),
]

FORM = "ingest API: upload form"


def _traversal_key(s: Session) -> httpx.Response:
    data = s.frame()
    key = f"frames/{s.device.device_id}/../../{s.other.device_id}/{frame_id(data)}.jpg"
    return s.form(data, key=key)


def _expired(s: Session) -> httpx.Response:
    data = s.frame()
    ticket = s.ticket(data)
    s.api.services.clock = lambda: utcnow() + timedelta(minutes=20)
    try:
        return httpx.post(ticket["url"], data=ticket["fields"], files={"file": ("f.jpg", data)})
    finally:
        s.api.services.clock = utcnow


def _no_file(s: Session) -> httpx.Response:
    ticket = s.ticket(s.frame())
    return httpx.post(ticket["url"], data=ticket["fields"], files={"other": ("f.jpg", b"x")})


def _oversized(s: Session) -> httpx.Response:
    """A form announcing 30 MB: answered before its body is read (sent over a raw socket, since
    an HTTP client will not announce more than it sends)."""
    url = httpx.URL(s.ticket(s.frame())["url"])
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: 30000000\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nConnection: close\r\n\r\n--x\r\n"
    )
    with socket.create_connection((url.host, url.port or 80), timeout=30) as connection:
        connection.sendall(head.encode())
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return httpx.Response(int(status_line.split()[1]), content=body)


FORM_CASES = [
    _case(
        FORM,
        "key moved into another device's prefix",
        403,
        "signature is not valid",
        lambda s: s.form(s.frame(), key=f"frames/{s.other.device_id}/{'0' * 64}.jpg"),
    ),
    _case(FORM, "path traversal in the key", 403, "signature is not valid", _traversal_key),
    _case(
        FORM,
        "other bytes than the ticket's",
        403,
        "the ticket allows",
        lambda s: s.form(s.frame(), send=make_jpeg(1)),
    ),
    _case(FORM, "ticket used after it expired", 403, "expired", _expired),
    _case(
        FORM,
        "expiry moved later",
        403,
        "signature is not valid",
        lambda s: s.form(s.frame(), expires=str(int(time.time()) + 86400)),
    ),
    _case(FORM, "no file part", 403, "no file part", _no_file),
    _case(
        FORM,
        "non-ASCII signature",
        403,
        "signature is not valid",
        lambda s: s.form(s.frame(), signature="é" * 64),
    ),
    _case(
        FORM, "size that is not a number", 403, "garbles", lambda s: s.form(s.frame(), size="ten")
    ),
    _case(FORM, "Content-Length of 30 MB", 413, "Content-Length", _oversized),
    _case(
        FORM,
        "more fields than a ticket has",
        400,
        "Too many fields",
        lambda s: s.form(s.frame(), extra="1", more="2"),
    ),
]

COMMIT = "ingest API: batch commit"


def _tampered(s: Session) -> httpx.Response:
    body = s.manifest()
    body["manifest"]["frames"][0]["lat"] = 61.0
    return s.commit(_json(body))


def _counter_reused(s: Session) -> httpx.Response:
    used = s.commit_good().json()["counter"]
    data = s.frame()
    s.upload(data)
    return s.commit(
        s.device.manifest(s.device.entries([data]), counter=used).model_dump_json().encode()
    )


def _foreign(s: Session) -> httpx.Response:
    data = s.frame()
    signed = s.other.manifest(s.other.entries([data]))
    return s.commit(signed.model_dump_json().encode())


def _not_uploaded(s: Session) -> httpx.Response:
    signed = s.device.manifest(s.device.entries([s.frame()]))
    return s.commit(signed.model_dump_json().encode())


def _listed_twice(s: Session) -> httpx.Response:
    data = s.frame()
    s.upload(data)
    entry = s.device.entries([data])[0]
    return s.commit(s.device.manifest([entry, entry]).model_dump_json().encode())


def _wrong_camera(s: Session) -> httpx.Response:
    body = s.manifest()
    camera = {
        "width_px": 640,
        "height_px": 480,
        "camera_matrix": [[500, 0, 320], [0, 500, 240], [0, 0, 1]],
    }
    body["manifest"]["cameras"] = {
        "0" * 64: {**camera, "mount_height_m": 1.4, "pitch_deg": 5, "roll_deg": 0}
    }
    return s.commit(_json(body))


def _infinity(s: Session) -> httpx.Response:
    body = json.dumps(s.manifest(hdop=float("inf")))  # JSON's Infinity: Python writes and reads it
    return s.commit(body.encode())


COMMIT_CASES = [
    _case(
        COMMIT, "latitude as text", 422, "lat", lambda s: s.commit(_json(s.manifest(lat="north")))
    ),
    _case(
        COMMIT,
        "counter of 2^70",
        422,
        "counter",
        lambda s: s.commit(
            _json({**(b := s.manifest()), "manifest": {**b["manifest"], "counter": 2**70}})
        ),
    ),
    _case(
        COMMIT,
        "sequence index of 2^40",
        422,
        "index",
        lambda s: s.commit(_json(s.manifest(index=2**40))),
    ),
    _case(
        COMMIT,
        "NUL in the sequence id",
        422,
        "sequence_id",
        lambda s: s.commit(_json(s.manifest(sequence_id="trip\x00one"))),
    ),
    _case(
        COMMIT,
        "capture in the year 9999",
        422,
        "between 1970 and 2200",
        lambda s: s.commit(_json(s.manifest(capture_time="9999-12-31T23:59:59-05:00"))),
    ),
    _case(COMMIT, "infinite HDOP", 422, "finite", _infinity),
    _case(
        COMMIT,
        "a forged log line in a model name",
        422,
        "model_versions",
        lambda s: s.commit(_json(s.manifest(model_versions={"face\nINFO all is well": "x"}))),
    ),
    _case(COMMIT, "camera keyed by another id", 422, "keyed by another id", _wrong_camera),
    _case(COMMIT, "manifest changed after signing", 401, "does not match its contents", _tampered),
    _case(COMMIT, "counter reused for other contents", 409, "already used", _counter_reused),
    _case(COMMIT, "another device's manifest", 401, "names another device", _foreign),
    _case(COMMIT, "frame never uploaded", 422, "is not uploaded", _not_uploaded),
    _case(COMMIT, "frame listed twice", 422, "more than once", _listed_twice),
    _case(COMMIT, "body not UTF-8", 400, "JSON in UTF-8", lambda s: s.commit(NOT_UTF8)),
    _case(
        COMMIT,
        "6 MB manifest",
        413,
        "limited to",
        lambda s: s.commit(b"[" + b"0," * 3_000_000 + b"0]"),
    ),
]

HOOK = "ingest API: MinIO webhook"


def _hook(s: Session, authorization: bytes | None) -> httpx.Response:
    headers = [(b"content-type", b"application/json")]
    headers += [(b"authorization", authorization)] if authorization is not None else []
    return s.api.http.post("/v1/notifications/minio", content=b'{"Records": []}', headers=headers)


WEBHOOK_CASES = [
    _case(HOOK, "no token", 401, "Bearer", lambda s: _hook(s, None)),
    _case(
        HOOK,
        "another deployment's token",
        401,
        "Bearer",
        lambda s: _hook(s, f"Bearer {NOTIFY_TOKEN}-other".encode()),
    ),
    _case(HOOK, "non-ASCII token", 401, "Bearer", lambda s: _hook(s, "Bearer é".encode("latin-1"))),
]

API_CASES = [*REGISTRATION_CASES, *TICKET_CASES, *FORM_CASES, *COMMIT_CASES, *WEBHOOK_CASES]
