"""The consumer API fuzzed from its own OpenAPI schema: no input makes it answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema

from ingest.db import Catalog
from ingest.storage import LocalObjectStore
from mapbuilder.serve.app import create_app
from mapbuilder.serve.keys import create_key
from tests.ingest_helpers import catalog_at
from tests.serve_helpers import map_services, seed_frames, seed_tiles

KEY_HEADER = "X-API-Key"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    """The schema of an app over a SQLite catalog with frames and tiles, and a valid key."""
    folder = tmp_path_factory.mktemp("fuzz")
    with catalog_at("sqlite", folder) as catalog:
        store = LocalObjectStore(folder / "store")
        seed_frames(catalog, store, 6)
        seed_tiles(store)
        _, key = create_key(catalog, "fuzz", rate_per_s=1e6, burst=1_000_000)
        app = create_app(map_services(catalog, store))
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        schema.config.headers = {KEY_HEADER: key}
        yield schema


EXAMPLES = 400


def test_no_input_gives_a_server_error(api_schema: BaseSchema) -> None:
    """Every generated request (valid and invalid), to every operation, gets a non-5xx answer; errors are JSON
    with a message."""
    results = list(api_schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "every operation's schema must load"
    assert len(operations) >= 8
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    cases = st.tuples(st.sampled_from(operations), modes).flatmap(
        lambda pair: pair[0].as_strategy(generation_mode=pair[1])
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call()
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.text[:300]}"
        )
        if response.status_code >= 400:
            assert response.json()["message"]

    check()


def test_openapi_declares_where_the_key_goes(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """Clients and fuzzers see the key schemes (header X-API-Key, query key): keyed routes need
    one, tiles and TileJSON may go without (public layers), signed images and layers need none."""
    doc = create_app(map_services(sqlite_catalog, LocalObjectStore(tmp_path))).openapi()
    schemes = doc["components"]["securitySchemes"]
    assert {k: schemes["ApiKeyHeader"][k] for k in ("type", "in", "name")} == {
        "type": "apiKey",
        "in": "header",
        "name": KEY_HEADER,
    }
    assert {k: schemes["ApiKeyQuery"][k] for k in ("type", "in", "name")} == {
        "type": "apiKey",
        "in": "query",
        "name": "key",
    }
    keyed: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"ApiKeyQuery": []}]
    operations = {
        (method, path): operation
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
    }
    needs = {where: op.get("security") for where, op in operations.items()}
    assert needs.pop(("get", "/tiles/{layer_name}/{z}/{x}/{y}.{ext}")) == [*keyed, {}]
    assert needs.pop(("get", "/tiles/{layer_name}/tilejson.json")) == [*keyed, {}]
    assert needs.pop(("get", "/v1/frames/{frame_id}/image.jpg")) is None
    assert needs.pop(("get", "/v1/layers")) is None
    assert needs == dict.fromkeys(needs, keyed) and len(needs) == 5
