"""What a settled pipeline run left behind, in a form two runs can be compared by: each frame's
state and quarantine reasons, each stored tile's sha256, the reward summary's rows and the
epoch's allocation computed from them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from ingest.catalog import Frame, Quarantine
from ingest.db import Catalog
from ingest.storage import ObjectStore
from rewards.binsummary import RewardBin
from rewards.canonical import canonical_json
from rewards.close import compute
from rewards.epochs import Epoch
from rewards.record import context_for
from rewards.settings import RewardsSettings
from tests.reliability.pipeline import Drive


@dataclass(frozen=True)
class Outcome:
    """What a run left: each frame's state and quarantine reasons, each stored tile's sha256,
    the reward summary's rows and the epoch's allocation computed from them."""

    states: dict[str, str]
    quarantine: dict[str, list[str]]
    tiles: dict[str, str]
    reward_bins: Sequence[tuple[object, ...]]
    epoch_body: bytes

    def figures(self) -> dict[str, object]:
        """Counts for the report."""
        states: dict[str, int] = {}
        for state in self.states.values():
            states[state] = states.get(state, 0) + 1
        return {
            "frames": len(self.states),
            "states": dict(sorted(states.items())),
            "tiles": len(self.tiles),
            "reward_bins": len(self.reward_bins),
            "epoch_body_sha256": hashlib.sha256(self.epoch_body).hexdigest()[:16],
        }


def outcome(catalog: Catalog, store: ObjectStore, drive: Drive) -> Outcome:
    """Read what a settled run left in the catalog and the store."""
    with catalog.session() as session:
        states = {
            fid: state.value for fid, state in session.execute(select(Frame.frame_id, Frame.state))
        }
        quarantine: dict[str, list[str]] = {}
        for fid, reason in session.execute(select(Quarantine.frame_id, Quarantine.reason)):
            quarantine.setdefault(fid, []).append(reason)
        bins = sorted(
            (
                r.epoch,
                r.counted_epoch,
                r.segment_id,
                r.direction,
                r.bin,
                r.device_id,
                r.frames,
                r.first_ms,
                r.last_ms,
                r.best_key,
                r.digest,
            )
            for r in session.scalars(select(RewardBin))
        )
    tiles = {
        obj.key: hashlib.sha256(store.get_bytes(obj.key)).hexdigest()
        for obj in store.list("tiles/")
    }
    return Outcome(states, quarantine, tiles, bins, _epoch_body(catalog, drive))


def _epoch_body(catalog: Catalog, drive: Drive) -> bytes:
    """The drive's epoch scored and allocated from the summary, as a close would (unsigned)."""
    params = RewardsSettings().params()
    epoch = Epoch.containing(drive.start)
    ctx = context_for(
        [],
        epoch,
        params,
        received_before=epoch.closable_at(params.grace_period_h),
        code_version="reliability",
        operator_key="00" * 32,
    )
    return canonical_json(compute(catalog, ctx, [], source="current").body)
