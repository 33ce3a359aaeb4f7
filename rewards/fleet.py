"""Fleet splits: a device's earnings shared with a fleet manager, in basis points.

A split is a ledger record, effective from the epoch after the one it was recorded in, so no one
can change how an epoch already under way (or closed) is paid out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ingest.catalog import Device
from ingest.db import Catalog
from rewards.epochs import Epoch
from rewards.errors import ParamsError
from rewards.ledger import StoredRecord, append, chain, head
from rewards.settings import RewardParams

KIND = "fleet_split"


@dataclass(frozen=True)
class FleetSplit:
    """Who manages a device's fleet and how much of its earnings they receive."""

    manager: str | None
    split_bp: int


NO_FLEET = FleetSplit(None, 0)


def set_fleet_split(
    catalog: Catalog,
    device_id: str,
    *,
    manager: str,
    split_bp: int,
    params: RewardParams,
    now: datetime,
) -> dict[str, Any]:
    """Record a split for `device_id` from the next epoch on (split 0 ends a fleet membership)."""
    if not 0 <= split_bp <= params.max_fleet_split_bp:
        msg = f"split {split_bp} bp is outside 0..{params.max_fleet_split_bp} bp: give basis points (2500 = 25 %)"
        raise ParamsError(msg)
    if split_bp and not manager:
        msg = "a split above 0 bp needs a --manager to pay"
        raise ParamsError(msg)
    body = {
        "device_id": device_id,
        "manager": manager or None,
        "split_bp": split_bp,
        "effective_epoch": Epoch.containing(now).next().key,
    }
    with catalog.session() as session:
        if session.scalar(select(Device.device_id).where(Device.device_id == device_id)) is None:
            msg = f"no registered device {device_id}: see `roadswarm ingest devices list`"
            raise ParamsError(msg)
        start = head(session)
    key = f"{device_id}#{start[0]}"
    append(catalog, chain(start, [(KIND, key, body)], now), expected_head=start[1])
    return body


def splits_in_effect(records: list[StoredRecord], epoch: Epoch) -> dict[str, FleetSplit]:
    """Each device's split for `epoch`: its latest record effective by then."""
    splits: dict[str, FleetSplit] = {}
    for record in records:
        if record.kind != KIND:
            continue
        body = record.body()
        if body["effective_epoch"] <= epoch.key:
            splits[body["device_id"]] = FleetSplit(body["manager"], int(body["split_bp"]))
    return splits
