"""The core part of the rewards benchmark: arrays in, signed ledger record out."""

from __future__ import annotations

import resource
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._rewards_data import synthetic_epoch
from rewards.binrows import frames_input_root
from rewards.canonical import canonical_json
from rewards.epochs import Epoch
from rewards.ledger import GENESIS, make_record
from rewards.operator import public_hex, sign_epoch
from rewards.record import EpochContext, epoch_body
from rewards.scoring import score_epoch
from rewards.settings import RewardParams

EPOCH = Epoch.parse("2026-11-23")


def core_run(
    frames: int, segments: int, devices: int, history: int, seed: int
) -> dict[str, object]:
    """Score, allocate, root, sign and encode one synthetic epoch; seconds per step, peak RSS."""
    data = synthetic_epoch(
        frames=frames, segments=segments, devices=devices, history=history, seed=seed, epoch=EPOCH
    )
    key = Ed25519PrivateKey.generate()
    params = RewardParams()
    started = time.perf_counter()
    scores = score_epoch(data.frames, data.history, data.segments, params, EPOCH)
    scored = time.perf_counter()
    ctx = EpochContext(
        EPOCH, params, EPOCH.end, "bench", GENESIS, public_hex(key.public_key()), None, {}
    )
    root, _ = frames_input_root(data.frames, data.segments, params)
    body = epoch_body(ctx, scores, input_root=root, excluded=[])
    record = make_record(
        seq=0,
        kind="epoch",
        key=EPOCH.key,
        prev=GENESIS,
        recorded_at=EPOCH.end,
        body=body,
        signature=sign_epoch(key, canonical_json(body["statement"])),
    )
    finished = time.perf_counter()
    return {
        "score_s": round(scored - started, 3),
        "record_s": round(finished - scored, 3),
        "total_s": round(finished - started, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "passes": len(scores.passes.bin),
        "bins": len(scores.bins.weight),
        "devices_paid": sum(int(d["gross"]) > 0 for d in body["details"]["devices"]),
        "record_bytes": len(record.record),
    }
