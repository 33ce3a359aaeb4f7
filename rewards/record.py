"""An epoch's result as a ledger body: a small signed statement and the details it commits to.

The statement (epoch, parameter hash, code version, ledger head, input root, allocation root, pool,
and the SHA-256 of the details) is what the operator signs, so a driver's proof needs only the
statement, the signature, their leaf and its path; the details hold every device's points,
amounts per reason and payees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from rewards.allocation import Cell, allocate, caps_in_units, largest_remainder, split_payees
from rewards.canonical import canonical_json
from rewards.epochs import Epoch
from rewards.errors import EpochError
from rewards.fleet import NO_FLEET, FleetSplit, splits_in_effect
from rewards.ledger import GENESIS, StoredRecord
from rewards.merkle import merkle_root
from rewards.scoring import REASONS, Scores
from rewards.settings import RewardParams

# Format 2: the input root is over per-bin rows (`rewards.binrows`), not over every frame id.
RESULT_FORMAT = 2
ALLOCATION_TAG = b"roadswarm-allocations-v1"
MILLI = 1000


@dataclass(frozen=True)
class EpochContext:
    """Everything besides the catalog's frames that an epoch's result depends on."""

    epoch: Epoch
    params: RewardParams
    received_before: datetime
    code_version: str
    ledger_head: str
    operator_key: str
    previous: dict[str, Any] | None
    fleet: dict[str, FleetSplit]


def context_for(
    records: list[StoredRecord],
    epoch: Epoch,
    params: RewardParams,
    *,
    received_before: datetime,
    code_version: str,
    operator_key: str,
) -> EpochContext:
    """The context of an epoch appended after `records` (epochs are closed in order)."""
    epochs = [r for r in records if r.kind == "epoch"]
    previous = epochs[-1].body() if epochs else None
    if previous is not None and previous["statement"]["epoch"] >= epoch.key:
        msg = f"epoch {previous['statement']['epoch']} is already closed: epochs close in order, and {epoch.key} is not after it"
        raise EpochError(msg)
    return EpochContext(
        epoch=epoch,
        params=params,
        received_before=received_before,
        code_version=code_version,
        ledger_head=records[-1].record_hash if records else GENESIS,
        operator_key=operator_key,
        previous=previous,
        fleet=splits_in_effect(records, epoch),
    )


def milli_points(scores: Scores) -> dict[str, np.ndarray]:
    """Points per reason as integer thousandths (device x region): allocation works on integers."""
    return {r: np.rint(scores.points[r] * MILLI).astype(np.int64) for r in REASONS}


def _previous_cumulative(previous: dict[str, Any] | None) -> dict[str, int]:
    if previous is None:
        return {}
    return {d["device_id"]: int(d["cumulative"]) for d in previous["details"]["devices"]}


def _gross(ctx: EpochContext, weights: np.ndarray, total: int) -> tuple[list[int], int, set[int]]:
    """Gross amount per device code, what was carried over, and the capped device codes."""
    devices, regions = weights.shape
    cells = [Cell(d, r, int(weights[d, r])) for d in range(devices) for r in range(regions)]
    device_cap = caps_in_units(total, ctx.params.device_cap_bp)
    region_caps = {
        r: cap
        for r, bp in enumerate(ctx.params.region_caps_bp())
        if (cap := caps_in_units(total, bp)) is not None
    }
    result = allocate(
        total,
        [c for c in cells if c.weight > 0],
        device_caps={} if device_cap is None else dict.fromkeys(range(devices), device_cap),
        region_caps=region_caps,
    )
    gross = [0] * devices
    for cell, amount in zip([c for c in cells if c.weight > 0], result.amounts, strict=True):
        gross[cell.device] += amount
    return gross, result.carried, set(result.capped_devices)


def _device_entry(
    device_id: str, points: dict[str, int], gross: int, cumulative: int, fleet: FleetSplit
) -> dict[str, Any]:
    """One device's line: points, gross, its split per reason and per payee."""
    by_reason = largest_remainder(gross, [points[r] for r in REASONS])
    lines, driver_total, fleet_total = [], 0, 0
    for reason, amount in zip(REASONS, by_reason, strict=True):
        driver, manager = split_payees(amount, fleet.split_bp)
        driver_total, fleet_total = driver_total + driver, fleet_total + manager
        lines.append(
            {
                "reason": reason,
                "amount": str(amount),
                "driver": str(driver),
                "fleet_manager": str(manager),
            }
        )
    return {
        "device_id": device_id,
        "points_milli": {r: str(points[r]) for r in REASONS},
        "gross": str(gross),
        "cumulative": str(cumulative),
        "allocations": lines,
        "payees": {
            "driver": {"payee": device_id, "amount": str(driver_total)},
            "fleet_manager": {
                "payee": fleet.manager,
                "split_bp": fleet.split_bp,
                "amount": str(fleet_total),
            },
        },
    }


def allocation_leaf(epoch_key: str, entry: dict[str, Any]) -> bytes:
    """A device's leaf in the allocation tree: its cumulative and this epoch's gross amount."""
    return canonical_json(
        {
            "epoch": epoch_key,
            "device_id": entry["device_id"],
            "gross": entry["gross"],
            "cumulative": entry["cumulative"],
        }
    )


def _device_entries(
    ctx: EpochContext, scores: Scores, points: dict[str, np.ndarray], pool: tuple[int, int]
) -> tuple[list[dict[str, Any]], int]:
    """Every device's line, sorted by id: this epoch's earners and everyone paid before (their
    cumulative amount stays in the tree); and what the caps carried over."""
    weights = sum((points[r] for r in REASONS), np.zeros_like(points["coverage"]))
    gross, carried_out, capped = _gross(ctx, weights, pool[0] + pool[1])
    cumulative = _previous_cumulative(ctx.previous)
    per_device = {r: points[r].sum(axis=1) for r in REASONS}
    entries = {}
    for code, device_id in enumerate(scores.devices):
        own = {r: int(per_device[r][code]) for r in REASONS}
        if sum(own.values()) == 0 and device_id not in cumulative:
            continue
        so_far = cumulative.get(device_id, 0) + gross[code]
        fleet = ctx.fleet.get(device_id, NO_FLEET)
        entries[device_id] = {
            **_device_entry(device_id, own, gross[code], so_far, fleet),
            "capped": code in capped,
        }
    zero = dict.fromkeys(REASONS, 0)
    for device_id, earlier in cumulative.items():
        if device_id not in entries:
            entries[device_id] = {
                **_device_entry(device_id, zero, 0, earlier, NO_FLEET),
                "capped": False,
            }
    return [entries[d] for d in sorted(entries)], carried_out


def _statement(
    ctx: EpochContext,
    frames: int,
    input_root: str,
    details: dict[str, Any],
    pool: tuple[int, int],
    carried_out: int,
) -> dict[str, Any]:
    """What the operator signs: everything a driver's proof is checked against."""
    base, carried_in = pool
    leaves = [allocation_leaf(ctx.epoch.key, e) for e in details["devices"]]
    return {
        "format": RESULT_FORMAT,
        "epoch": ctx.epoch.key,
        "start": ctx.epoch.start.isoformat(),
        "end": ctx.epoch.end.isoformat(),
        "received_before": ctx.received_before.isoformat(),
        "params_sha256": ctx.params.sha256(),
        "code_version": ctx.code_version,
        "ledger_head": ctx.ledger_head,
        "operator_key": ctx.operator_key,
        "previous_epoch": ctx.previous["statement"]["epoch"] if ctx.previous else None,
        "frames": frames,
        "input_root": input_root,
        "allocation_root": merkle_root(ALLOCATION_TAG, leaves).hex(),
        "leaves": len(leaves),
        "pool": {
            "base": str(base),
            "carried_in": str(carried_in),
            "total": str(base + carried_in),
            "allocated": str(base + carried_in - carried_out),
            "carried_out": str(carried_out),
        },
        "details_sha256": hashlib.sha256(canonical_json(details)).hexdigest(),
    }


def epoch_body(
    ctx: EpochContext, scores: Scores, *, input_root: str, excluded: list[str]
) -> dict[str, Any]:
    """The ledger body of an epoch's result (unsigned); `input_root` commits to the frames counted
    (`rewards.binrows.input_root`); `excluded` lists the frames left out because they were still
    in the pipeline at a forced close (so a recomputation leaves them out)."""
    carried_in = int(ctx.previous["statement"]["pool"]["carried_out"]) if ctx.previous else 0
    pool = (ctx.params.pool_base_units, carried_in)
    devices, carried_out = _device_entries(ctx, scores, milli_points(scores), pool)
    details = {
        "params": ctx.params.document(),
        "regions": scores.regions,
        "devices": devices,
        "stats": {
            "bins": len(scores.bins.weight),
            "new_bins": int(scores.bins.first_capture.sum()),
            "passes": len(scores.passes.bin),
            "devices_with_frames": len(scores.devices),
        },
        "excluded_pending": excluded,
    }
    statement = _statement(ctx, scores.frames, input_root, details, pool, carried_out)
    return {"statement": statement, "details": details}
