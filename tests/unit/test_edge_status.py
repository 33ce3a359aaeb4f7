"""`edge status`: km mapped today and this epoch (an ISO week from Monday 00:00 UTC), counted from
the keyframes' distance along their trips, gaps left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from edge.livespool import LiveSpool
from edge.status import device_status, epoch_start, status_text
from tests.edge_records import keyframe

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday


def test_epochs_start_on_monday_at_midnight_utc() -> None:
    """Wednesday, Monday itself and Sunday night belong to the week from that Monday; Monday
    01:00 in Helsinki summer time is still Sunday in UTC, so the week before."""
    monday = datetime(2026, 6, 1, tzinfo=UTC)
    assert epoch_start(NOW) == monday == epoch_start(monday)
    assert epoch_start(datetime(2026, 6, 7, 23, 59, tzinfo=UTC)) == monday
    helsinki = timezone(timedelta(hours=3))
    assert epoch_start(datetime(2026, 6, 1, 1, 0, tzinfo=helsinki)) == monday - timedelta(days=7)


def test_km_mapped_today_and_this_epoch(tmp_path: Path) -> None:
    """A trip across midnight counts each 4 m step on the day of its later keyframe (124 steps
    before, 126 after); a 304 m jump (a privacy zone) is not mapping; last week's trip is not this
    epoch's."""
    with LiveSpool(tmp_path / "spool") as spool:
        midnight = datetime(2026, 6, 3, tzinfo=UTC)
        for i in range(251):  # 1 km over the night
            spool.add(*keyframe("night", i, 4.0 * i, midnight + timedelta(seconds=i - 125)))
        for i in range(26):  # 12 steps, a jump, 12 steps: 96 m
            spool.add(*keyframe("morning", i, 4.0 * i + (300.0 if i > 12 else 0.0), NOW))
        for i in range(100):  # last Sunday: another epoch
            spool.add(*keyframe("sunday", i, 4.0 * i, datetime(2026, 5, 31, 12, tzinfo=UTC)))
        status = device_status(spool, now=NOW)
    assert status["km_today"] == (126 * 4 + 96) / 1000
    assert status["km_this_epoch"] == (250 * 4 + 96) / 1000
    assert status["epoch"] == "2026-W23"
    assert "0.60 km today, 1.10 km this epoch (2026-W23)" in status_text(status)
