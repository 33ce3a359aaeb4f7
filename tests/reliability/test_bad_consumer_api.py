"""The corpus's requests to the consumer API, each between good tile and imagery requests with the
same key: each gets its status and a JSON message saying what was wrong and what to do; the good
requests around them all answer, and the key is billed for the good ones only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from ingest.api.errors import one_line
from ingest.storage import LocalObjectStore
from tests.ingest_helpers import catalog_at
from tests.reliability.bad_consumer import CONSUMER_CASES, Consumer, _query, _z17
from tests.reliability.bad_corpus import BadCase, ids, logged
from tests.serve_helpers import seed_frames, seed_tiles, served_map_api


@dataclass
class Outcome:
    """Each case's answer, the good answers around them, and the key's bill."""

    answers: dict[str, httpx.Response]
    logged: list[str] = field(default_factory=list)
    good: list[httpx.Response] = field(default_factory=list)
    billed: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)


def _good(consumer: Consumer, outcome: Outcome) -> None:
    """A tile and a query that must keep working, counted as the key should be billed."""
    tile = consumer.tile(*_z17(consumer))
    query = consumer.query(_query())
    outcome.good += [tile, query]
    outcome.expected["tiles"] += 1
    outcome.expected["frames"] += len(query.json()["frames"]) if query.status_code == 200 else 0


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Every case sent once, between good requests, over a SQLite catalog with frames and tiles."""
    folder = tmp_path_factory.mktemp("bad-consumer")
    with logged("ingest.api.errors") as lines, catalog_at("sqlite", folder) as catalog:
        store = LocalObjectStore(folder / "store")
        frames = seed_frames(catalog, store, 6)
        tiles = seed_tiles(store)
        with served_map_api(catalog, store) as api:
            consumer = Consumer(api, frames, tiles)
            result = Outcome({}, lines, expected={"tiles": 0, "frames": 0})
            for case in CONSUMER_CASES:
                _good(consumer, result)
                answer = case.make(consumer)
                result.answers[case.id] = answer
                # Two cases ask for a frame's URL first: one frame each, billed.
                result.expected["frames"] += case.name.startswith(
                    "image URL with"
                ) + case.name.startswith("image URL moved")
            _good(consumer, result)
            usage = api.http.get("/v1/account/usage", headers=api.keyed()).json()
            result.billed = {
                "tiles": sum(d["tiles"] for d in usage["days"]),
                "frames": sum(d["frames"] for d in usage["days"]),
            }
            yield result


@pytest.mark.parametrize("case", CONSUMER_CASES, ids=ids(CONSUMER_CASES))
def test_a_bad_request_is_refused_saying_why(case: BadCase, outcome: Outcome) -> None:
    """The case's status and a JSON message saying what was wrong."""
    answer = outcome.answers[case.id]
    assert answer.status_code == case.status, answer.text
    message = answer.json()["message"]
    assert case.says in message, answer.text
    logged = one_line(message[:200])
    assert any(logged in line and "\n" not in line for line in outcome.logged), logged


def test_the_good_requests_around_them_all_answer(outcome: Outcome) -> None:
    """Every tile and query between the bad requests was served."""
    assert [answer.status_code for answer in outcome.good] == [200] * len(outcome.good)


def test_the_key_is_billed_for_good_requests_only(outcome: Outcome) -> None:
    """The key's usage counts the good tiles and frames, and nothing the bad requests asked for."""
    assert outcome.billed == outcome.expected
