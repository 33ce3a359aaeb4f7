"""The corpus's requests to the ingest API, all sent to one served API between good batches of
two devices: each gets its 4xx with a message saying what was wrong and what to do, is logged and
counted; and nothing else is lost or changed: the good batches before, between and after are all
cataloged, nothing a refused request carried was stored, and the device's counter moved only
with its good commits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ingest.api.errors import one_line
from ingest.catalog import Device, Frame
from ingest.db import Catalog
from ingest.settings import IngestSettings
from tests.ingest_helpers import UPLOAD_SECRET, FakeDevice, catalog_at, served_api
from tests.reliability.bad_corpus import BadCase, ids, logged
from tests.reliability.bad_requests import API_CASES, ENROLLMENT_TOKEN, NOTIFY_TOKEN, Session


@dataclass
class Outcome:
    """What each case got, what the API logged, and the session that sent them."""

    answers: dict[str, httpx.Response]
    logged: list[str]
    metrics: str
    session: Session
    catalog: Catalog


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Every case sent once, each between good commits of the device and of another device."""
    folder: Path = tmp_path_factory.mktemp("bad-api")
    settings = IngestSettings(
        upload_secret=UPLOAD_SECRET, enrollment_token=ENROLLMENT_TOKEN, notify_token=NOTIFY_TOKEN
    )
    with (
        logged("ingest.api.errors") as lines,
        catalog_at("sqlite", folder) as catalog,
        served_api(catalog, folder / "store", settings=settings) as api,
    ):
        device, other = FakeDevice(), FakeDevice()
        for each in (device, other):
            body = {**each.registration(), "enrollment_token": ENROLLMENT_TOKEN}
            assert api.http.post("/v1/devices", json=body).status_code == 201
        session = Session(api, device, other)
        answers = {}
        for n, case in enumerate(API_CASES):
            session.commit_good()
            answers[case.id] = case.make(session)
            if n % 5 == 4:  # the other device too, now and then
                session.commit_good(by=other)
        session.commit_good()
        metrics = api.http.get("/metrics").text
        yield Outcome(answers, lines, metrics, session, catalog)


@pytest.mark.parametrize("case", API_CASES, ids=ids(API_CASES))
def test_a_bad_request_is_refused_saying_why(case: BadCase, outcome: Outcome) -> None:
    """The case's status, and a JSON message saying what was wrong; the refusal is logged."""
    answer = outcome.answers[case.id]
    assert answer.status_code == case.status, answer.text
    body = answer.json()
    assert body["error"] and case.says in body["message"], body
    logged = one_line(body["message"][:200])
    assert any(logged in line and "\n" not in line for line in outcome.logged), logged


def test_refusals_are_counted_by_status(outcome: Outcome) -> None:
    """/metrics counts the refusals of every status at least as often as the corpus sent them."""
    for status in {case.status for case in API_CASES}:
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in outcome.metrics.splitlines()
            if line.startswith("roadswarm_api_request_seconds_count")
            and f'status="{status}"' in line
        )
        assert counted >= sum(case.status == status for case in API_CASES), status


def test_nothing_else_is_lost_or_changed(outcome: Outcome) -> None:
    """Exactly the good frames are cataloged; the store holds only properly uploaded objects; the
    device's counter is its last good commit's."""
    session = outcome.session
    with outcome.catalog.session() as db:
        cataloged = set(db.scalars(select(Frame.frame_id)))
        counter = db.get(Device, session.device.device_id)
        assert counter is not None
        last_counter = counter.last_counter
    assert cataloged == session.committed
    good_commits = len(API_CASES) + len(API_CASES) // 5 + 1 + 1  # + the counter-reuse case's
    assert len(cataloged) == 2 * good_commits
    stored = {stored.key for stored in session.api.store.list("frames/")}
    assert stored == session.uploaded
    good = session.commit_good().json()["counter"]
    assert good > last_counter
