"""Frames a device commits that the ingest workers must quarantine: objects that are not sane
JPEGs, objects lost or changed after the commit, fixes that teleport or travel in time, and
replays of another device's images. Each case gives the bytes uploaded for its frame and how its
record differs from the drive it sits in (a straight road north at 10 m/s, a frame every 4 m)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from PIL import Image

from ingest.protocol import FrameEntry
from tests.ingest_helpers import make_jpeg, make_jpeg_bomb
from tests.reliability.bad_corpus import BadCase

VALIDATION = "ingest worker: validation"
QUARANTINED = "quarantine row (reason, detail), frame state quarantined, /metrics by reason"
Change = Callable[[FrameEntry], FrameEntry]


@dataclass(frozen=True)
class BadFrame:
    """The bytes uploaded for a frame, how its record is changed, and what happens to its
    object after the commit ("delete" or "swap"; None: nothing)."""

    data: bytes
    change: Change | None = None
    after_commit: str | None = None


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _header_only() -> bytes:
    """The first segments of a JPEG (SOI, JFIF, tables) and its end marker, no frame."""
    data = make_jpeg(5002)
    return data[: data.index(b"\xff\xc0")] + b"\xff\xd9"


def _move(**deltas: float) -> Change:
    def change(entry: FrameEntry) -> FrameEntry:
        return entry.model_copy(update={k: getattr(entry, k) + v for k, v in deltas.items()})

    return change


def _captured(shift: timedelta) -> Change:
    return lambda entry: entry.model_copy(update={"capture_time": entry.capture_time + shift})


def _at(when: datetime) -> Change:
    return lambda entry: entry.model_copy(update={"capture_time": when})


def _frame(name: str, says: str, make: Callable[[], BadFrame]) -> BadCase:
    return BadCase(VALIDATION, name, says, QUARANTINED, make)


WIDE = Image.new("RGB", (9000, 200), (40, 150, 60))
FRAME_CASES = [
    _frame("JPEG cut in half", "undecodable", lambda: BadFrame(make_jpeg(5003)[:9000])),
    _frame(
        "PNG",
        "not_jpeg",
        lambda: BadFrame(_encoded(Image.new("RGB", (640, 480), (9, 200, 30)), "PNG")),
    ),
    _frame("GIF", "not_jpeg", lambda: BadFrame(_encoded(Image.new("P", (640, 480)), "GIF"))),
    _frame(
        "header claiming 60000 x 60000 px",
        "decompression_bomb",
        lambda: BadFrame(make_jpeg_bomb(5001)),
    ),
    _frame("9000 px wide", "decompression_bomb", lambda: BadFrame(_encoded(WIDE, "JPEG"))),
    _frame("100 x 80 px", "too_small", lambda: BadFrame(make_jpeg(5004, 100, 80))),
    _frame(
        "text, not an image", "undecodable", lambda: BadFrame(b"this is not a photograph\n" * 40)
    ),
    _frame("JPEG header with no image", "undecodable", lambda: BadFrame(_header_only())),
    _frame(
        "progressive JPEG cut short",
        "undecodable",
        lambda: BadFrame(
            _encoded(Image.open(io.BytesIO(make_jpeg(5005))), "JPEG", progressive=True)[:6000]
        ),
    ),
    _frame(
        "object deleted after the commit",
        "object_missing",
        lambda: BadFrame(make_jpeg(5006), after_commit="delete"),
    ),
    _frame(
        "object changed after the commit",
        "hash_mismatch",
        lambda: BadFrame(make_jpeg(5007), after_commit="swap"),
    ),
    _frame(
        "fix 5 km off the road", "teleport", lambda: BadFrame(make_jpeg(5008), _move(lat=0.045))
    ),
    _frame(
        "captured a minute before the frame ahead",
        "time_order",
        lambda: BadFrame(make_jpeg(5009), _captured(timedelta(seconds=-60))),
    ),
    _frame(
        "captured tomorrow",
        "future_capture",
        lambda: BadFrame(make_jpeg(5010), _at(datetime.now(UTC) + timedelta(days=1))),
    ),
    _frame(
        "captured 60 days ago",
        "stale_capture",
        lambda: BadFrame(make_jpeg(5011), _at(datetime.now(UTC) - timedelta(days=60))),
    ),
    _frame(
        "0 to 90 m/s in 0.4 s",
        "implausible_acceleration",
        lambda: BadFrame(make_jpeg(5012), _move(speed_mps=80.0)),
    ),
]


def replayed_image() -> tuple[bytes, bytes]:
    """Another device's image, and the same image re-encoded (a replay hiding its bytes)."""
    original = make_jpeg(5013)
    return original, _encoded(Image.open(io.BytesIO(original)), "JPEG", quality=70)


REPLAY_CASES = [
    _frame(
        "another device's image re-encoded",
        "near_duplicate_other_device",
        lambda: BadFrame(replayed_image()[1]),
    ),
    BadCase(
        "ingest API: batch commit",
        "another device's exact bytes",
        "duplicate_of_other_device",
        "quarantine row at the commit; the frame stays the first device's",
        lambda: BadFrame(replayed_image()[0]),
    ),
]
