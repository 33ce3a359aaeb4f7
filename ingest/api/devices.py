"""Routes devices call: register, ask for upload tickets, upload (embedded store), commit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from ingest.api.services import ApiServices
from ingest.commit import commit_batch
from ingest.devices import DeviceInfo, authenticate, register_device
from ingest.errors import UploadRefusedError
from ingest.ops import device_summary
from ingest.protocol import (
    CommitReceipt,
    Registration,
    SignedManifest,
    UploadRequest,
    UploadTicket,
    UploadTickets,
    frame_object_key,
)
from ingest.uploads import expiry

router = APIRouter(prefix="/v1", tags=["devices"])


def services(request: Request) -> ApiServices:
    """The services the app was built with."""
    found: ApiServices = request.app.state.services
    return found


Services = Annotated[ApiServices, Depends(services)]


async def raw_body(request: Request) -> bytes:
    """The exact bytes the device signed (FastAPI parses the same cached body)."""
    return await request.body()


def signed_path(request: Request) -> str:
    """The path with its query, as the device requested and signed it."""
    query = request.url.query
    root: str = request.scope.get("root_path", "")
    return root + request.url.path + (f"?{query}" if query else "")


def device(
    request: Request, api: Services, body: Annotated[bytes, Depends(raw_body)]
) -> DeviceInfo:
    """The registered, unrevoked device whose key signed this request."""
    return authenticate(
        api.catalog,
        method=request.method,
        path=signed_path(request),
        body=body,
        headers=dict(request.headers),
        now=api.clock(),
        max_skew_s=api.settings.request_max_skew_s,
    )


Device = Annotated[DeviceInfo, Depends(device)]


class Registered(BaseModel):
    """A registration's answer."""

    device_id: str
    created: bool


@router.post("/devices", status_code=201)
def register(registration: Registration, api: Services, response: Response) -> Registered:
    """Register a device's public key (201), or confirm an existing registration (200)."""
    info, created = register_device(
        api.catalog,
        registration,
        now=api.clock(),
        enrollment_token=api.settings.enrollment_token,
    )
    if not created:
        response.status_code = 200
    return Registered(device_id=info.device_id, created=created)


@router.post("/uploads")
def upload_tickets(request_body: UploadRequest, api: Services, caller: Device) -> UploadTickets:
    """Tickets to upload frames into the caller's own prefix, each for its exact size."""
    expires_at = expiry(api.clock(), api.settings.upload_url_expiry_s)
    too_big = [
        i.frame_id[:12] for i in request_body.frames if i.size_bytes > api.settings.max_frame_bytes
    ]
    if too_big:
        msg = f"frames {', '.join(too_big[:5])} exceed {api.settings.max_frame_bytes} bytes: re-encode them smaller"
        raise UploadRefusedError(msg)
    tickets = []
    for item in request_body.frames:
        key = frame_object_key(caller.device_id, item.frame_id)
        stored = api.store.head(key)
        if stored is not None and (stored.size, stored.sha256) == (item.size_bytes, item.frame_id):
            tickets.append(
                UploadTicket(
                    frame_id=item.frame_id,
                    key=key,
                    url="",
                    fields={},
                    expires_at=expires_at,
                    already_uploaded=True,
                )
            )
        else:
            tickets.append(api.signer.ticket(key, item, expires_at))
    return UploadTickets(tickets=tickets)


@router.post("/batches", status_code=201)
def commit(
    manifest: SignedManifest, api: Services, caller: Device, response: Response
) -> CommitReceipt:
    """Commit a signed batch whose frames are uploaded; repeating a commit is harmless (200)."""
    committed = commit_batch(api.catalog, api.store, caller, manifest, api.clock())
    if committed.receipt.already_committed:
        response.status_code = 200
    api.queue_validation(committed.new_frame_ids)
    return committed.receipt


@router.get("/devices/me")
def me(api: Services, caller: Device) -> dict[str, Any]:
    """The caller's registration and how its frames fare, for the driver's status screen."""
    return device_summary(api.catalog, caller)
