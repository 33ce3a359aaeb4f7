"""The malformed-input corpus of issue 10, as a table: each case names what is wrong with its input,
the entry point it goes into, a fragment of the error a person is shown, and where the refusal is
recorded. Inputs are built in code when a test asks for them; nothing binary is committed.

The cases live beside the code that builds them (`bad_gnss.py`, `bad_files.py`, `bad_frames.py`,
`bad_requests.py`, `bad_consumer.py`); `test_bad_corpus_table.py` gathers them and prints the
summary table (`pytest -s`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BadCase:
    """One malformed input: `make` builds it (its arguments depend on the entry point)."""

    entry: str
    name: str
    says: str
    recorded: str
    make: Callable[..., Any]
    status: int | None = None  # the HTTP status of the refusal, for the APIs' cases

    @property
    def id(self) -> str:
        """A pytest id: the entry point's last word and the case's name."""
        return f"{self.entry.split(':')[-1].strip()}: {self.name}"


def ids(cases: Iterable[BadCase]) -> list[str]:
    """The pytest ids of `cases`."""
    return [case.id for case in cases]


def summary(cases: Iterable[BadCase]) -> list[tuple[str, int, str]]:
    """(entry point, number of cases, where refusals are recorded) for RELIABILITY.md."""
    cases = list(cases)
    counts = Counter(case.entry for case in cases)
    recorded: dict[str, set[str]] = {}
    for case in cases:
        recorded.setdefault(case.entry, set()).add(case.recorded)
    return [(entry, counts[entry], "; ".join(sorted(recorded[entry]))) for entry in counts]


def markdown(cases: Iterable[BadCase]) -> str:
    """The summary as a Markdown table."""
    rows = ["| entry point | cases | recorded in |", "|---|---|---|"]
    rows += [f"| {entry} | {count} | {recorded} |" for entry, count, recorded in summary(cases)]
    return "\n".join(rows)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def logged(name: str) -> Iterator[list[str]]:
    """The messages logged at INFO and above by logger `name` while the block runs."""
    logger, lines = logging.getLogger(name), _Lines()
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        yield lines.lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
