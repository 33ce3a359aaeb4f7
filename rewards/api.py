"""The rewards routes of the ingest API (mounted by the composition layer, `roadswarm`, since
`ingest` may not import `rewards`): devices fetch their earnings with a signed request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.devices import Device, Services
from ingest.protocol import DeviceEarnings
from rewards.earnings import device_earnings

router = APIRouter(prefix="/v1", tags=["devices"])


@router.get("/devices/me/earnings")
def earnings(
    api: Services, caller: Device, last: Annotated[int, Query(ge=1, le=520)] = 12
) -> DeviceEarnings:
    """The calling device's allocations in the `last` closed epochs, newest first, each with its
    inclusion proof against the epoch's signed allocation root."""
    with api.catalog.session() as session:
        return device_earnings(session, caller.device_id, last=last)
