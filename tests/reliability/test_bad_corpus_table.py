"""The corpus as a whole: at least 50 malformed inputs over every entry point, each naming what
its error says and where it is recorded. `pytest -s` prints the summary table for RELIABILITY.md."""

from __future__ import annotations

from tests.reliability.bad_consumer import CONSUMER_CASES
from tests.reliability.bad_corpus import markdown, summary
from tests.reliability.bad_files import CLI_FILE_CASES, EDGE_FILE_CASES
from tests.reliability.bad_frames import FRAME_CASES, REPLAY_CASES
from tests.reliability.bad_gnss import GPX_FILE_CASES, GPX_POINT_CASES, NMEA_CASES
from tests.reliability.bad_requests import API_CASES

ALL_CASES = [
    *NMEA_CASES,
    *GPX_POINT_CASES,
    *GPX_FILE_CASES,
    *EDGE_FILE_CASES,
    *API_CASES,
    *FRAME_CASES,
    *REPLAY_CASES,
    *CONSUMER_CASES,
    *CLI_FILE_CASES,
]


def test_the_corpus_covers_every_entry_point() -> None:
    """At least 50 cases, named uniquely, over the edge's files, both APIs, the workers and the
    other commands, each with the text its error shows and where it is recorded."""
    print("\n" + markdown(ALL_CASES) + f"\n| all | {len(ALL_CASES)} | |")
    assert len(ALL_CASES) >= 50
    assert len({(case.entry, case.name) for case in ALL_CASES}) == len(ALL_CASES)
    assert all(case.says and case.recorded for case in ALL_CASES)
    entries = {entry for entry, _, _ in summary(ALL_CASES)}
    for needed in (
        "NMEA",
        "GPX",
        "calibration",
        "registration",
        "upload form",
        "commit",
        "webhook",
        "validation",
        "tiles",
        "imagery",
        "keys",
        "commands",
    ):
        assert any(needed in entry for entry in entries), needed
