"""The driver's earnings on the device: a copy of the server's answer kept in the spool, refreshed
whenever the device reaches the ingest API (each upload run), so `edge status` shows them offline
too, saying how old the copy is.

Amounts stay integers in base units (9 decimals) as the server sends them; only the text for the
driver turns them into tokens.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.client import IngestClient, RequestRefusedError, ServerUnreachableError
from edge.spool import Spool
from ingest.protocol import DeviceEarnings

log = logging.getLogger(__name__)

EARNINGS = "earnings"
EARNINGS_FETCHED_AT = "earnings_fetched_at"
# Epochs close weekly; a copy older than a day may miss a close and is shown as stale.
STALE_AFTER = timedelta(hours=24)
BASE_UNITS = 10**9


def refresh_earnings(spool: Spool, client: IngestClient, *, now: datetime | None = None) -> bool:
    """Fetch the earnings and keep them in the spool; False (the old copy kept) if the server
    could not be reached, refused (an older server without the route answers 404) or answered
    something that is not earnings: the upload that called it has succeeded either way."""
    try:
        answer = client.earnings()
    except (ServerUnreachableError, RequestRefusedError, ValueError) as exc:
        log.info("earnings not refreshed (%s): the spool keeps the last copy", exc)
        return False
    spool.set_value(EARNINGS, answer.model_dump_json())
    spool.set_value(EARNINGS_FETCHED_AT, (now or datetime.now(UTC)).isoformat())
    return True


def tokens(base_units: str) -> str:
    """Base units as tokens with all 9 decimals, exactly (no float on the way)."""
    whole, fraction = divmod(int(base_units), BASE_UNITS)
    return f"{whole:,}.{fraction:09d}"


def earnings_status(spool: Spool, *, now: datetime) -> dict[str, Any]:
    """What status shows: the last epoch's and total earnings from the cached copy, its age."""
    stored, fetched = spool.get_value(EARNINGS), spool.get_value(EARNINGS_FETCHED_AT)
    if stored is None or fetched is None:
        return {"fetched_at": None, "age_h": None, "stale": True, "last_epoch": None}
    answer = DeviceEarnings.model_validate_json(stored)
    fetched_at = datetime.fromisoformat(fetched)
    last = answer.epochs[0] if answer.epochs else None
    return {
        "fetched_at": fetched_at.isoformat(),
        "age_h": round((now - fetched_at) / timedelta(hours=1), 1),
        "stale": now - fetched_at > STALE_AFTER,
        "last_closed_epoch": answer.last_closed_epoch,
        "last_epoch": None
        if last is None
        else {"epoch": last.epoch, "gross": last.gross, "driver": last.driver},
        "total_gross": answer.total_gross,
        "total_driver": answer.total_driver,
        "allocation_root": None if last is None else last.allocation_root,
    }


def earnings_text(status: dict[str, Any]) -> str:
    """One line for the driver."""
    if status["fetched_at"] is None:
        return "earnings: never fetched (they are fetched when the device next reaches the server)"
    fetched = datetime.fromisoformat(status["fetched_at"])
    age = f"as of {fetched:%Y-%m-%d %H:%M} UTC" + (
        f", STALE: fetched {status['age_h']:.0f} h ago, the server has not been reached since"
        if status["stale"]
        else ""
    )
    last = status["last_epoch"]
    if last is None:
        return f"earnings: none yet ({age})"
    return (
        f"earnings: {tokens(last['driver'])} tokens in epoch {last['epoch']},"
        f" {tokens(status['total_driver'])} in total ({age})"
    )
