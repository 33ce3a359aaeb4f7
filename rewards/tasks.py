"""Celery task of the rewards (queue `rewards`): keep the per-bin capture summary current.

Run by the scheduler every few minutes so that closing an epoch finds only the last few minutes'
changes to summarise, instead of a week's backlog refreshed at close time.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ingest.queues import REWARDS_BINS_TASK
from ingest.tasks import RETRY, worker_context
from rewards.binsummary import refresh_bins
from rewards.settings import RewardsSettings


def refresh_bins_job() -> dict[str, Any]:
    """Recompute the bins of the (device, segment) pairs changed since the last refresh."""
    report = refresh_bins(worker_context().catalog, RewardsSettings().params())
    return {"pairs": report.pairs, "rows": report.rows, "rebuilt": report.rebuilt}


refresh_bins_task = shared_task(name=REWARDS_BINS_TASK, **RETRY)(refresh_bins_job)
