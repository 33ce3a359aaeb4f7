"""What each API process does when it starts and stops, besides serving.

Started: the objects made while importing and building the app are frozen out of the garbage
collector (measured on a busy 2-core machine: a full collection over them paused a worker for up
to 126 ms under load; after `gc.freeze()` one took under 1 ms), and background loops write the
usage, check cached tiles against the store and read cached keys again. Stopping: the last usage
is written and unspent rate-limit tokens go back to their buckets, so a clean shutdown loses and
strands nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from ingest.errors import IngestError
from mapbuilder.serve.services import ServeServices
from mapbuilder.serve.tiles_api import revalidate

log = logging.getLogger(__name__)
CATALOG_ERRORS = (SQLAlchemyError, IngestError)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Freeze the startup heap, run the background loops while serving, and close cleanly."""
    services: ServeServices = app.state.services
    gc.collect()
    gc.freeze()
    loops = [asyncio.create_task(_every(*loop)) for loop in _loops(services)]
    try:
        yield
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await asyncio.to_thread(close, services)
        gc.unfreeze()  # where the app ran inside a longer-lived process (tests, the demo)


Loop = tuple[float, Callable[[], object], str]


def _loops(services: ServeServices) -> list[Loop]:
    """(interval, work, what a failure means) of each background loop these settings ask for."""
    loops: list[Loop] = [
        (services.settings.usage_flush_s, services.meter.flush, "usage not written yet, kept"),
    ]
    # Entries in use are checked at half their time to live, so none runs out while in use.
    if services.cache.ttl_s > 0:
        checked = partial(revalidate, services)
        loops.append((services.cache.ttl_s / 2, checked, "cached tiles not checked, they expire"))
    if services.keys.ttl_s > 0:
        reread = services.keys.refresh_due
        loops.append((services.keys.ttl_s / 2, reread, "cached keys not read again, they expire"))
    return loops


async def _every(interval_s: float, work: Callable[[], object], failing: str) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(work)
        except Exception as exc:  # a loop that stopped would stop flushing or checking for good
            log.warning("%s: %s", failing, exc)


def close(services: ServeServices) -> None:
    """Write the last usage and give back unspent tokens; say what could not be saved."""
    try:
        services.meter.flush()
    except CATALOG_ERRORS as exc:
        lost = [
            f"{d.key_id} {d.day}: {d.tiles} tiles, {d.frames} frames, {d.credits} credits"
            for d in services.meter.pending()
        ]
        log.error(
            "usage could not be written at shutdown (%s); not billed: %s", exc, "; ".join(lost)
        )
    try:
        services.leases.give_back()
    except CATALOG_ERRORS as exc:
        log.warning("unspent rate-limit tokens not returned (%s): buckets refill on their own", exc)
