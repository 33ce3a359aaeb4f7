"""What reading a GNSS log gives: the usable fixes in time order and every record that was not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.gnss.fix import BadRecord, Fix


class GnssFileError(EdgeError):
    """A GNSS log that cannot be read at all: missing, unreadable or not of the expected format."""


@dataclass(frozen=True)
class GnssLog:
    """Fixes in strictly increasing time, and the records left out with the reason for each."""

    fixes: list[Fix]
    bad: list[BadRecord]


def check_sequence(
    fixes: Sequence[Fix], source: str, *, locations: Sequence[str] | None = None
) -> GnssLog:
    """Keep fixes whose time is after the last kept one; the others become bad records.

    A receiver log is written as time goes, so a fix out of order is a fault to report, not
    something to sort away. `locations` names each fix in the file (default "fix N").
    """
    where = list(locations) if locations is not None else [f"fix {i}" for i in range(len(fixes))]
    if len(where) != len(fixes):
        msg = f"{len(fixes)} fixes but {len(where)} locations"
        raise ValueError(msg)
    kept: list[Fix] = []
    bad: list[BadRecord] = []
    for fix, location in zip(fixes, where, strict=True):
        if kept and fix.time <= kept[-1].time:
            bad.append(BadRecord(source, location, out_of_order(kept[-1], fix)))
        else:
            kept.append(fix)
    return GnssLog(kept, bad)


def out_of_order(last: Fix, fix: Fix) -> str:
    """Why a fix not after the last kept one is left out."""
    if fix.time == last.time:
        return f"time repeats {fix.time.isoformat()}"
    return f"time goes backwards from {last.time.isoformat()} to {fix.time.isoformat()}"


def read_bytes(path: Path, kind: str) -> bytes:
    """The whole file, or a GnssFileError saying why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        msg = f"{kind} log {path} does not exist"
    except IsADirectoryError:
        msg = f"{kind} log {path} is a directory, not a file"
    except OSError as error:
        msg = f"{kind} log {path} cannot be read: {error}"
    raise GnssFileError(msg)
