"""The coverage and freshness layers wired to the rewards: segment weights from the reward
parameters, and one call that builds what is dirty (used by the CLI, the worker task and the demo).

`mapbuilder` draws the layers but must not import `rewards` (which imports it), so the weight of a
segment is computed here, with the rewards' own parameters and region rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from ingest.db import Catalog
from ingest.storage import ObjectStore
from mapbuilder.layers.build import LayerBuild, build_dirty, rebuild_layers
from mapbuilder.layers.marking import LAYER_NAMES, mark_segments_dirty, segments_aging
from mapbuilder.layers.stats import SegmentCoverage, SegmentWeights
from mapbuilder.tiles.store import TileStore
from rewards.arrays import SegmentTable
from rewards.bins import region_of_segments
from rewards.settings import RewardParams, RewardsSettings


def reward_weights(params: RewardParams) -> SegmentWeights:
    """Each segment's weight as the rewards score it: metres x road-class factor x region
    multiplier (the sum of its bins' weights in one direction, before freshness and bounties)."""

    def weigh(segments: Sequence[SegmentCoverage]) -> list[float]:
        centres = np.array([s.center_lonlat for s in segments], np.float64).reshape(-1, 2)
        table = SegmentTable(
            segment_ids=[s.segment_id for s in segments],
            length_m=np.array([s.length_m for s in segments], np.float64),
            road_class=[s.road_class for s in segments],
            center_lon=centres[:, 0],
            center_lat=centres[:, 1],
        )
        multipliers = np.array([1.0, *(r.multiplier for r in params.regions)])
        region = region_of_segments(table, params)
        return [
            s.length_m * params.class_factor(s.road_class) * float(multipliers[r])
            for s, r in zip(segments, region, strict=True)
        ]

    return weigh


def build_layers(
    catalog: Catalog,
    store: ObjectStore,
    *,
    now: datetime,
    everything: bool = False,
    layers: Sequence[str] = LAYER_NAMES,
    min_zoom: int = 0,
    params: RewardParams | None = None,
) -> LayerBuild:
    """Build the dirty coverage and freshness tiles down to `min_zoom` (`everything`: mark every
    segment's tiles and every stored tile first, which also re-colours freshness as captures
    age)."""
    weights = reward_weights(params or RewardsSettings().params())
    tiles = TileStore(store)
    if everything:
        return rebuild_layers(
            catalog, tiles, segment_ids=None, weights=weights, now=now, layers=layers
        )
    return build_dirty(catalog, tiles, weights=weights, now=now, layers=layers, min_zoom=min_zoom)


def refresh_aged(
    catalog: Catalog, store: ObjectStore, *, now: datetime, window: timedelta
) -> LayerBuild:
    """Rebuild the freshness tiles of segments whose captures crossed a colour's age bound in
    the `window` before `now` (nothing else changes colour with time alone), and every tile
    still dirty in either layer (the low zooms `layers.update` leaves for later)."""
    segments = segments_aging(catalog, now=now, window=window)
    marked = (
        mark_segments_dirty(catalog, segments, now=now, layers=["freshness"]) if segments else {}
    )
    result = build_layers(catalog, store, now=now)
    result.marked = marked
    return result
