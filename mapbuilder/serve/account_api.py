"""`GET /v1/account/usage`: the calling key's own metering, never another key's."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mapbuilder.serve.auth import KEYED, require_key, services_of
from mapbuilder.serve.schemas import DayUsageOut, UsageOut
from mapbuilder.serve.usage import usage_of

router = APIRouter(tags=["account"])


@router.get("/v1/account/usage", summary="This key's usage in map credits", dependencies=KEYED)
def account_usage(request: Request) -> UsageOut:
    """Tiles, frames and credits per UTC day for the last 31 days, of the key that asks.

    This process's use is written first, so it is all there; other API processes write theirs
    every `ROADSWARM_SERVE_USAGE_FLUSH_S` seconds (1 by default), so it shows within that time.
    """
    key = require_key(request)
    services = services_of(request)
    services.meter.flush()
    days = usage_of(services.catalog, key.key_id)
    return UsageOut(
        key_id=key.key_id,
        name=key.name,
        credits_per_tile=services.settings.credits_per_tile,
        credits_per_frame=services.settings.credits_per_frame,
        total_credits=sum(day.credits for day in days),
        days=[
            DayUsageOut(day=d.day, tiles=d.tiles, frames=d.frames, credits=d.credits) for d in days
        ],
    )
