"""Epochs: weeks in UTC, named by their Monday, closable once the upload grace period has passed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from rewards.errors import EpochError

EPOCH_DAYS = 7


@dataclass(frozen=True, order=True)
class Epoch:
    """One reward epoch: [Monday 00:00 UTC, next Monday 00:00 UTC)."""

    monday: date

    def __post_init__(self) -> None:
        if self.monday.weekday() != 0:
            msg = f"epoch {self.monday} is a {self.monday:%A}: epochs are named by their Monday (e.g. {_monday_of(self.monday)})"
            raise EpochError(msg)

    @classmethod
    def parse(cls, text: str) -> Epoch:
        """An epoch from its Monday written as YYYY-MM-DD."""
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            msg = f"epoch {text!r} is not a date: give its Monday as YYYY-MM-DD (e.g. 2026-11-23)"
            raise EpochError(msg) from exc
        return cls(day)

    @classmethod
    def containing(cls, moment: datetime) -> Epoch:
        """The epoch a UTC time falls in."""
        return cls(_monday_of(moment.astimezone(UTC).date()))

    @property
    def key(self) -> str:
        """The epoch's name in records: its Monday."""
        return self.monday.isoformat()

    @property
    def start(self) -> datetime:
        """Monday 00:00 UTC."""
        return datetime.combine(self.monday, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The next Monday 00:00 UTC (excluded)."""
        return self.start + timedelta(days=EPOCH_DAYS)

    def next(self) -> Epoch:
        """The epoch after this one."""
        return Epoch(self.monday + timedelta(days=EPOCH_DAYS))

    def closable_at(self, grace_period_h: float) -> datetime:
        """When uploads of this epoch's captures stop counting and it may be closed."""
        return self.end + timedelta(hours=grace_period_h)


def _monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def received_before(epoch: Epoch, grace_period_h: float, now: datetime, *, force: bool) -> datetime:
    """The upload cutoff an epoch closed `now` uses; refuses before the grace period ends unless
    forced (then frames received from now on are left out, and the record says so)."""
    cutoff = epoch.closable_at(grace_period_h)
    if now >= cutoff:
        return cutoff
    if not force:
        msg = (
            f"epoch {epoch.key} may be closed from {cutoff.isoformat()} (its uploads' grace period):"
            " wait, or pass --force to close it now without later uploads"
        )
        raise EpochError(msg)
    return now
