"""What `edge status` tells the driver: keyframes by state, raw candidates waiting, km mapped today
and this epoch, evictions, whether capture is paused, and the last error.

Km mapped are added up from the keyframes' distance along their trip: between consecutive
keyframes of a sequence, gaps longer than `MAX_STEP_M` (a privacy zone, a GNSS outage, frames
left out) are not counted. An epoch is an ISO week, Monday 00:00 UTC to the next Monday.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from edge.earnings import earnings_status, earnings_text
from edge.livespool import LiveSpool
from edge.package import KeyframeRecord
from edge.quota import PAUSED

MAX_STEP_M = 50.0


def epoch_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week holding `now`."""
    day = now.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def km_by_day(records: list[KeyframeRecord]) -> dict[date, float]:
    """Km mapped per UTC day: each step between consecutive keyframes of a sequence counts for
    the day its later keyframe was taken."""
    by_sequence: dict[str, list[KeyframeRecord]] = defaultdict(list)
    for record in records:
        by_sequence[record.sequence_id].append(record)
    metres: dict[date, float] = defaultdict(float)
    for sequence in by_sequence.values():
        sequence.sort(key=lambda r: r.index)
        for before, after in pairwise(sequence):
            step = after.travelled_m - before.travelled_m
            if 0 < step <= MAX_STEP_M:
                day = datetime.fromisoformat(after.capture_time).astimezone(UTC).date()
                metres[day] += step
    return {day: m / 1000 for day, m in metres.items()}


def device_status(spool: LiveSpool, *, now: datetime | None = None) -> dict[str, object]:
    """The spool's status with the live-capture figures added."""
    moment = now or datetime.now(UTC)
    start = epoch_start(moment)
    per_day = km_by_day(spool.records_since(start - timedelta(days=1)))
    today = moment.astimezone(UTC).date()
    paused = spool.get_value(PAUSED)
    year, week, _ = start.isocalendar()
    return {
        **spool.status(),
        "raw_candidates": spool.raw_counts(),
        "raw_bytes_waiting": spool.queued_bytes(),
        "km_today": round(per_day.get(today, 0.0), 3),
        "km_this_epoch": round(sum(km for day, km in per_day.items() if day >= start.date()), 3),
        "epoch": f"{year}-W{week:02d}",
        "capture_paused": None if paused is None else json.loads(paused),
        "evictions": spool.event_summary("eviction"),
        "earnings": earnings_status(spool, now=moment),
    }


def status_text(status: dict[str, Any]) -> str:
    """The status in a few lines for the driver."""
    counts, raw = status["keyframes"], status["raw_candidates"]
    lines = [
        f"spool {status['spool']}: {counts['ready']} keyframes waiting to upload, "
        f"{counts['uploaded']} uploaded, {counts['committed']} committed",
        f"raw candidates waiting for the privacy stage: {raw['queued']} "
        f"({status['raw_bytes_waiting'] / 1e6:.1f} MB, {raw['held_for_trip_end']} held until "
        f"their trip goes on)",
        f"mapped: {status['km_today']:.2f} km today, {status['km_this_epoch']:.2f} km this epoch "
        f"({status['epoch']})",
    ]
    evictions = status["evictions"]
    if evictions["count"]:
        lines.append(
            f"evicted to stay within the quota: {evictions['count']} (last: {evictions['last']['message']})"
        )
    if status["capture_paused"]:
        paused = status["capture_paused"]
        lines.append(f"capture paused since {paused['since']}: {paused['reason']}")
    lines.append(earnings_text(status["earnings"]))
    last = status["last_error"]
    lines.append(f"last error: {last['at']}: {last['message']}" if last else "last error: none")
    return "\n".join(lines)
