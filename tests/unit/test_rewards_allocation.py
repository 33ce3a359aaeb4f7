"""Exact allocation: largest remainders, capped water-filling, payee splits."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.allocation import Cell, allocate, largest_remainder, split_payees

pools = st.integers(0, 10**15)
weights = st.lists(st.integers(0, 10**9), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(total=pools, shares=weights)
def test_largest_remainder_is_exact_and_close_to_the_quota(total: int, shares: list[int]) -> None:
    """The parts sum to the total, a zero weight gets nothing, each is within one unit of its
    exact quota."""
    parts = largest_remainder(total, shares)
    if sum(shares) == 0:
        assert parts == [0] * len(shares)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, shares, strict=True):
        quota = Fraction(total * weight, sum(shares))
        assert quota - 1 < part < quota + 1
        assert part >= 0 and (weight > 0 or part == 0)


def test_ties_go_to_the_earlier_position() -> None:
    """Equal remainders are broken by position (callers order devices by id)."""
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert largest_remainder(2, [1, 1, 1]) == [1, 1, 0]


def test_negative_input_is_refused() -> None:
    """Negative weights or totals are a caller's bug, not a rounding case."""
    with pytest.raises(ValueError, match="negative"):
        largest_remainder(5, [1, -1])


cells_strategy = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 2), st.integers(0, 10**6)), min_size=1, max_size=20
)


@settings(max_examples=200, deadline=None)
@given(
    pool=pools,
    raw=cells_strategy,
    device_cap=st.none() | st.integers(0, 10**15),
    region_caps=st.dictionaries(st.integers(0, 2), st.integers(0, 10**15), max_size=3),
)
def test_capped_allocation_loses_nothing_and_respects_every_cap(
    pool: int, raw: list[tuple[int, int, int]], device_cap: int | None, region_caps: dict[int, int]
) -> None:
    """Amounts plus what is carried over equal the pool; no cap is exceeded; nothing is carried
    over while some cell with points could still take more."""
    unique = {(d, r): w for d, r, w in raw}
    cells = [Cell(d, r, w) for (d, r), w in sorted(unique.items())]
    caps = {} if device_cap is None else {c.device: device_cap for c in cells}
    result = allocate(pool, cells, device_caps=caps, region_caps=region_caps)
    assert sum(result.amounts) + result.carried == pool
    assert all(a >= 0 for a in result.amounts)
    for cell, amount in zip(cells, result.amounts, strict=True):
        assert cell.weight > 0 or amount == 0
    for key, cap in caps.items():
        assert sum(a for c, a in zip(cells, result.amounts, strict=True) if c.device == key) <= cap
    for key, cap in region_caps.items():
        assert sum(a for c, a in zip(cells, result.amounts, strict=True) if c.region == key) <= cap
    if result.carried:
        open_cells = [
            c
            for c in cells
            if c.weight > 0
            and c.device not in result.capped_devices
            and c.region not in result.capped_regions
        ]
        assert open_cells == []


def test_a_capped_device_gives_its_excess_to_the_others() -> None:
    """With a 50 % cap, a device holding 90 % of the points gets half, the rest is shared."""
    cells = [Cell(0, 0, 90), Cell(1, 0, 5), Cell(2, 0, 5)]
    result = allocate(1000, cells, device_caps=dict.fromkeys(range(3), 500), region_caps={})
    assert result.amounts == [500, 250, 250] and result.carried == 0
    assert result.capped_devices == {0}


def test_when_everyone_is_capped_the_rest_is_carried_over() -> None:
    """Caps below the pool's share leave an exact remainder for the next epoch."""
    result = allocate(
        1000, [Cell(0, 0, 1), Cell(1, 0, 3)], device_caps={0: 100, 1: 100}, region_caps={}
    )
    assert result.amounts == [100, 100] and result.carried == 800


@given(gross=st.integers(0, 10**18), split=st.integers(0, 10_000))
def test_payee_halves_sum_to_the_gross(gross: int, split: int) -> None:
    """Driver and fleet-manager halves always add up to the gross."""
    driver, fleet = split_payees(gross, split)
    assert driver + fleet == gross and driver >= 0 and fleet >= 0
