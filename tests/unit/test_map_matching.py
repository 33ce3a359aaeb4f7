"""Tests of `mapbuilder.matching`: the HMM matcher on the grid extract and on hand-made roads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mapbuilder.matching.matcher import MapMatcher
from mapbuilder.matching.observations import observe
from mapbuilder.roads import RoadNetwork, read_network
from mapbuilder.roads.segment import make_segment
from mapbuilder.sequences import stitch
from mapbuilder.settings import MatchSettings
from tests.map_fixtures import START_S, Drive, clock, drive, walk


@pytest.fixture(scope="module")
def network(grid_osm: Path) -> RoadNetwork:
    """The 3 x 3 block grid as a matchable network."""
    return read_network(grid_osm)


@pytest.fixture(scope="module")
def matcher(network: RoadNetwork) -> MapMatcher:
    """A matcher with the default settings."""
    return MapMatcher(network, settings=MatchSettings())


def _exact_share(network: RoadNetwork, matcher: MapMatcher, trip: Drive) -> float:
    """Share of fixes matched to their true segment in their true direction."""
    result = matcher.match(trip.lon, trip.lat, trip.time_s)
    truth = trip.truth(network)
    hits = [
        p is not None and (p.segment_id, p.direction) == t
        for p, t in zip(result.points, truth, strict=True)
    ]
    return float(np.mean(hits))


def _east_street(length_m: float = 200.0) -> RoadNetwork:
    """Two parallel east-west streets 60 m apart that never meet (node ids 1-2 and 3-4)."""
    south = make_segment(
        1,
        [1, 2],
        [(24.94, 60.17), (24.9436, 60.17)],
        road_class="residential",
        oneway=False,
        lanes=2,
    )
    north = make_segment(
        2,
        [3, 4],
        [(24.94, 60.17054), (24.9436, 60.17054)],
        road_class="residential",
        oneway=False,
        lanes=2,
    )
    del length_m
    return RoadNetwork([south, north])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_one_hertz_drive_lands_on_true_segments(
    network: RoadNetwork, matcher: MapMatcher, seed: int
) -> None:
    """A 2 km walk of the grid at 1 Hz with 5 m errors: at least 95 % of fixes on the true directed segment."""
    trip = drive(network, walk(network, 2000.0, seed), rate_hz=1.0, noise_m=5.0, seed=seed)
    assert _exact_share(network, matcher, trip) >= 0.95


def test_ten_hertz_is_thinned_and_every_fix_is_placed(
    network: RoadNetwork, matcher: MapMatcher
) -> None:
    """At 10 Hz the HMM sees one observation per 10 m, yet every fix is placed, 97 % on its true segment."""
    trip = drive(network, walk(network, 1500.0, 5), rate_hz=10.0, noise_m=5.0, seed=5)
    (seq,) = stitch(trip.lon, trip.lat, trip.time_s, frame=network.frame)
    observations = observe(seq, spacing_m=10.0, min_speed_mps=3.0)
    assert len(observations.x) < len(trip.lon) / 5
    result = matcher.match(trip.lon, trip.lat, trip.time_s)
    assert all(p is not None for p in result.points)
    assert _exact_share(network, matcher, trip) >= 0.97


def test_covered_intervals_follow_the_route(network: RoadNetwork, matcher: MapMatcher) -> None:
    """Without noise the path lists the walk's directed segments in order, whole between its ends."""
    edges = walk(network, 1200.0, 3)
    trip = drive(network, edges, rate_hz=1.0, noise_m=0.0)
    (path,) = matcher.match(trip.lon, trip.lat, trip.time_s).paths
    driven = [
        (network.segments[e // 2].segment_id, "forward" if e % 2 == 0 else "backward")
        for e in edges
    ]
    assert [(iv.segment_id, iv.direction) for iv in path.intervals] == driven[: len(path.intervals)]
    assert len(path.intervals) >= len(edges) - 1
    for iv in path.intervals[1:-1]:
        length = float(network.length_m[network.index[iv.segment_id]])
        assert iv.from_m == pytest.approx(0.0, abs=0.01)
        assert iv.to_m == pytest.approx(length, abs=0.01)


def test_offsets_and_distances_of_exact_fixes(network: RoadNetwork, matcher: MapMatcher) -> None:
    """Fixes on the centreline are placed where they are (within 1 m; 5 m where smoothing cuts a
    corner), at a distance under 1 m along straight streets."""
    edges = walk(network, 800.0, 4)
    trip = drive(network, edges, rate_hz=1.0, noise_m=0.0, speed_mps=7.0)
    result = matcher.match(trip.lon, trip.lat, trip.time_s)
    length = network.length_m[np.array(edges) // 2]
    starts = np.concatenate([[0.0], np.cumsum(length)[:-1]])
    for i, point in enumerate(result.points):
        assert point is not None
        k = int(np.searchsorted(starts, i * 7.0, "right") - 1)
        along = i * 7.0 - starts[k]
        expected = along if edges[k] % 2 == 0 else length[k] - along
        straight = 15.0 < along < length[k] - 15.0
        if straight:
            assert point.segment_id == network.segments[edges[k] // 2].segment_id
            assert point.distance_m < 1.0
        if point.segment_id == network.segments[edges[k] // 2].segment_id:
            assert point.offset_m == pytest.approx(expected, abs=1.0 if straight else 5.0)


def test_one_way_street_is_only_matched_forward(network: RoadNetwork, matcher: MapMatcher) -> None:
    """No fix of any walk is placed against the one-way street's direction."""
    one_way = {s.segment_id for s in network.segments if s.oneway}
    for seed in range(4):
        trip = drive(network, walk(network, 1500.0, seed), noise_m=5.0, seed=seed)
        for point in matcher.match(trip.lon, trip.lat, trip.time_s).points:
            assert point is None or point.segment_id not in one_way or point.direction == "forward"


def _out_and_back(network: RoadNetwork, *, back_m: float, seed: int) -> Drive:
    """East along the south street for 120 m at 10 m/s, then `back_m` west again (1 Hz, 4 m noise)."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.arange(0.0, 120.0, 10.0), 120.0 - np.arange(10.0, back_m + 1e-9, 10.0)])
    x0, y0 = network.point_at(np.array([0]), np.array([0.0]))
    x1, y1 = network.point_at(np.array([0]), np.array([network.local_length_m[0]]))
    direction = np.array([x1[0] - x0[0], y1[0] - y0[0]]) / network.local_length_m[0]
    x = x0[0] + 40.0 * direction[0] + s * direction[0] + rng.normal(0, 4.0, len(s))
    y = y0[0] + 40.0 * direction[1] + s * direction[1] + rng.normal(0, 4.0, len(s))
    lon, lat = network.frame.to_wgs84(x, y)
    return Drive(lon, lat, clock(len(s)), [0] * len(s))


def test_u_turn_is_matched_when_the_track_really_turns() -> None:
    """Driving 120 m east then 100 m back west: the last fixes are matched backward."""
    network = _east_street()
    trip = _out_and_back(network, back_m=100.0, seed=1)
    points = (
        MapMatcher(network, settings=MatchSettings()).match(trip.lon, trip.lat, trip.time_s).points
    )
    assert points[0] is not None and points[0].direction == "forward"
    assert all(p is not None and p.direction == "backward" for p in points[-5:])


def test_reversing_penalty_keeps_jitter_from_turning_round() -> None:
    """Standing still at the end of a drive: with the penalty no U-turn is matched; without it,
    and without headings, the jitter is read as turning round."""
    network = _east_street()
    trip = _out_and_back(network, back_m=0.0, seed=2)
    rng = np.random.default_rng(7)
    x, y = network.frame.to_local(np.repeat(trip.lon[-1], 40), np.repeat(trip.lat[-1], 40))
    lon, lat = network.frame.to_wgs84(x + rng.normal(0, 6.0, 40), y + rng.normal(0, 6.0, 40))
    lon, lat = np.concatenate([trip.lon, lon]), np.concatenate([trip.lat, lat])
    time_s = clock(len(lon))
    penalised = MapMatcher(network, settings=MatchSettings(thin_spacing_m=0.0))
    free = MapMatcher(
        network,
        settings=MatchSettings(thin_spacing_m=0.0, reverse_penalty_m=0.0, heading_kappa=0.0),
    )
    directions = {
        iv.direction for path in penalised.match(lon, lat, time_s).paths for iv in path.intervals
    }
    assert directions == {"forward"}
    loose = {iv.direction for path in free.match(lon, lat, time_s).paths for iv in path.intervals}
    assert loose == {"forward", "backward"}


def test_break_where_no_route_joins_the_fixes() -> None:
    """Fixes that move from one street to a parallel one it never meets make two paths, all matched."""
    network = _east_street()
    x0, y0 = network.point_at(np.array([0, 1]), np.array([20.0, 20.0]))
    east = np.arange(12) * 12.0
    x = np.concatenate([x0[0] + east[:6], x0[1] + east[6:]])
    y = np.concatenate([np.full(6, y0[0]), np.full(6, y0[1])])
    lon, lat = network.frame.to_wgs84(x, y)
    result = MapMatcher(network, settings=MatchSettings()).match(lon, lat, clock(12))
    first, second = result.paths
    assert len(result.sequences) == 1
    assert (first.first_index, second.last_index) == (0, 11)
    assert first.last_index + 1 == second.first_index
    assert {iv.segment_id for iv in first.intervals} == {network.segments[0].segment_id}
    assert {iv.segment_id for iv in second.intervals} == {network.segments[1].segment_id}
    # The fixes next to the jump may be too far from the street the smoothed track chose.
    assert sum(p is not None for p in result.points) >= 10


def test_bad_input_gives_unmatched_points_not_errors(
    network: RoadNetwork, matcher: MapMatcher
) -> None:
    """Empty, single, far-away and NaN fixes: an entry per fix, None where nothing can be matched."""
    lon0, lat0 = network.segments[0].lonlat[0]
    assert matcher.match(np.array([]), np.array([]), np.array([])).points == []
    (single,) = matcher.match(np.array([lon0]), np.array([lat0]), np.array([START_S])).points
    assert single is not None and single.distance_m < 0.01
    far = matcher.match(
        np.array([lon0 + 1.0, lon0 + 1.0]), np.array([lat0, lat0]), np.array([0.0, 1.0])
    )
    assert far.points == [None, None] and far.paths == []
    nan = matcher.match(
        np.array([np.nan, lon0, 500.0]), np.array([lat0, np.nan, lat0]), np.array([0.0, 1.0, 2.0])
    )
    assert nan.points == [None, None, None]


def test_unsorted_times_are_matched_in_time_order(
    network: RoadNetwork, matcher: MapMatcher
) -> None:
    """Fixes given out of time order get the same places as the same fixes sorted."""
    trip = drive(network, walk(network, 600.0, 6), noise_m=3.0, seed=6)
    order = np.random.default_rng(0).permutation(len(trip.lon))
    shuffled = matcher.match(trip.lon[order], trip.lat[order], trip.time_s[order]).points
    sorted_points = matcher.match(trip.lon, trip.lat, trip.time_s).points
    assert [
        shuffled[int(np.flatnonzero(order == i)[0])] for i in range(len(order))
    ] == sorted_points
