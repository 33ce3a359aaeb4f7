"""Exact allocation of an epoch's pool: integer base units, largest remainders, capped water-filling.

All arithmetic here is on Python integers, so nothing is created or lost to rounding: the amounts
always sum to what was distributed, and what no one may receive is carried to the next epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BASIS_POINTS = 10_000


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` (Hamilton's method): floors first, then one unit
    each to the largest remainders, ties to the earlier position (callers order by device id).

    A zero weight never receives a unit; with no weight at all nothing is given (all zeros)."""
    if total < 0 or any(w < 0 for w in weights):
        msg = f"cannot split {total} over weights {list(weights)[:5]}...: negative values"
        raise ValueError(msg)
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[i] += 1
    return shares


@dataclass(frozen=True)
class Cell:
    """One device's points in one region (the unit the caps act on)."""

    device: int
    region: int
    weight: int


@dataclass(frozen=True)
class Allocated:
    """Each cell's amount, and what the caps left undistributed (carried over)."""

    amounts: list[int]
    carried: int
    capped_devices: frozenset[int]
    capped_regions: frozenset[int]


def _totals(cells: Sequence[Cell], amounts: Sequence[int], attr: str) -> dict[int, int]:
    totals: dict[int, int] = {}
    for cell, amount in zip(cells, amounts, strict=True):
        key = getattr(cell, attr)
        totals[key] = totals.get(key, 0) + amount
    return totals


def _binding(
    cells: Sequence[Cell],
    amounts: Sequence[int],
    adds: Sequence[int],
    caps: dict[str, dict[int, int]],
) -> tuple[tuple[int, int], str, int] | None:
    """The constraint the round's additions overshoot most: (allowed, added) as a fraction, its
    kind and key; None when every cap holds."""
    tightest: tuple[tuple[int, int], str, int] | None = None
    for attr, limit in caps.items():
        before = _totals(cells, amounts, attr)
        added = _totals(cells, adds, attr)
        for key in sorted(added):
            cap = limit.get(key)
            if cap is None or before.get(key, 0) + added[key] <= cap:
                continue
            ratio = (cap - before.get(key, 0), added[key])
            if tightest is None or ratio[0] * tightest[0][1] < tightest[0][0] * ratio[1]:
                tightest = (ratio, attr, key)
    return tightest


def allocate(
    pool: int,
    cells: Sequence[Cell],
    *,
    device_caps: dict[int, int],
    region_caps: dict[int, int],
) -> Allocated:
    """Water-filling: give the rest of the pool in proportion to the unfrozen cells' weights; when
    that would break a cap, give only the fraction the tightest cap allows, freeze the cells under
    it, and go round again. Each round freezes a device or a region, so it ends; what is left when
    every cell is frozen is carried over."""
    amounts = [0] * len(cells)
    frozen = [cell.weight == 0 for cell in cells]
    capped: dict[str, set[int]] = {"device": set(), "region": set()}
    caps = {"device": device_caps, "region": region_caps}
    remaining = pool
    while remaining > 0 and not all(frozen):
        active = [i for i, f in enumerate(frozen) if not f]
        shares = largest_remainder(remaining, [cells[i].weight for i in active])
        adds = [0] * len(cells)
        for i, share in zip(active, shares, strict=True):
            adds[i] = share
        tight = _binding(cells, amounts, adds, caps)
        if tight is not None:
            (allowed, added), attr, key = tight
            adds = [a * allowed // added for a in adds]
            capped[attr].add(key)
            for i in active:
                frozen[i] = frozen[i] or getattr(cells[i], attr) == key
        amounts = [a + b for a, b in zip(amounts, adds, strict=True)]
        remaining = pool - sum(amounts)
    return Allocated(amounts, remaining, frozenset(capped["device"]), frozenset(capped["region"]))


def split_payees(gross: int, split_bp: int) -> tuple[int, int]:
    """(driver, fleet manager) halves of a gross amount; the driver gets the rounding unit."""
    fleet = gross * split_bp // BASIS_POINTS
    return gross - fleet, fleet


def caps_in_units(pool: int, cap_bp: int) -> int | None:
    """A cap in base units, or None when it is the whole pool (no cap)."""
    return None if cap_bp >= BASIS_POINTS else pool * cap_bp // BASIS_POINTS
