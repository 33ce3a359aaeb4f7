"""Merkle trees and the ledger's chain: proofs verify, and any changed byte is caught."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.canonical import canonical_json
from rewards.epochs import Epoch
from rewards.errors import EpochError
from rewards.ledger import GENESIS, StoredRecord, chain, make_record, record_hash
from rewards.merkle import (
    frame_set_root,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_proof,
    sorted_rows,
)
from rewards.operator import public_hex, sign_epoch
from rewards.settings import RewardParams
from rewards.verify import check_chain

TAG = b"test-tree"
EPOCH = Epoch.parse("2026-11-23")
KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_every_leaf_proves_its_inclusion(count: int) -> None:
    """Each leaf's path leads to the root; another leaf's data with it does not."""
    leaves = [f"leaf-{i}".encode() for i in range(count)]
    root = merkle_root(TAG, leaves)
    for i, leaf in enumerate(leaves):
        steps = inclusion_proof(TAG, leaves, i)
        assert root_from_proof(TAG, leaf, steps) == root
        assert root_from_proof(TAG, b"forged", steps) != root


def test_leaves_and_nodes_are_domain_separated() -> None:
    """A node's bytes as a leaf give another hash, and the odd last node is promoted, not paired
    with itself (so [a, b, c] and [a, b, c, c] differ)."""
    a, b = leaf_hash(TAG, b"a"), leaf_hash(TAG, b"b")
    assert merkle_root(TAG, [b"a", b"b"]) == node_hash(TAG, a, b)
    assert merkle_root(TAG, [a + b]) != node_hash(TAG, a, b)
    assert merkle_root(TAG, [b"a", b"b", b"c"]) != merkle_root(TAG, [b"a", b"b", b"c", b"c"])
    assert merkle_root(TAG, []) != merkle_root(b"other", [])


def test_frame_set_root_ignores_order_and_sorts_like_bytes() -> None:
    """Ids are sorted as byte strings, even when their first eight bytes tie."""
    ids = np.random.default_rng(3).integers(0, 256, (3000, 32), dtype=np.uint8)
    ids[:50, :8] = 7
    assert [bytes(r) for r in sorted_rows(ids)] == sorted(bytes(r) for r in ids)
    shuffled = ids[np.random.default_rng(4).permutation(len(ids))]
    assert frame_set_root(TAG, ids, chunk=64) == frame_set_root(TAG, shuffled, chunk=64)


def test_epochs_are_mondays_in_utc() -> None:
    """An epoch is named by its Monday; other days are refused with the Monday to use."""
    assert EPOCH.end - EPOCH.start == timedelta(days=7)
    assert Epoch.containing(EPOCH.start + timedelta(days=6, hours=23)) == EPOCH
    with pytest.raises(EpochError, match="2026-11-23"):
        Epoch.parse("2026-11-25")


def test_params_hash_is_stable_and_changes_with_any_value() -> None:
    """The same parameters hash the same through their ledger document; any change differs."""
    params = RewardParams()
    assert RewardParams.from_document(params.document()).sha256() == params.sha256()
    assert RewardParams(bin_length_m=25).sha256() != params.sha256()
    with pytest.raises(ValueError, match="rank_weights"):
        RewardParams(rank_weights=(0.5, 1.0))


def _ledger() -> list[StoredRecord]:
    """Two registrations, a batch, a signed epoch and a fleet split after it."""
    at = EPOCH.end + timedelta(days=3)
    records = chain(
        (0, GENESIS),
        [
            ("device", "d1", {"device_id": "d1", "public_key": "00", "registered_at": "x"}),
            ("device", "d2", {"device_id": "d2", "public_key": "01", "registered_at": "x"}),
            ("batch", "d1:1", {"accepted": 2, "accepted_root": "ab" * 32}),
        ],
        at,
    )
    details = {"devices": [{"device_id": "d1", "gross": "5"}]}
    statement = {
        "epoch": EPOCH.key,
        "ledger_head": records[-1].record_hash,
        "operator_key": public_hex(KEY.public_key()),
        "details_sha256": hashlib.sha256(canonical_json(details)).hexdigest(),
    }
    epoch = make_record(
        seq=3,
        kind="epoch",
        key=EPOCH.key,
        prev=records[-1].record_hash,
        recorded_at=at,
        body={"statement": statement, "details": details},
        signature=sign_epoch(KEY, canonical_json(statement)),
    )
    split = chain((4, epoch.record_hash), [("fleet_split", "d1#4", {"split_bp": 100})], at)
    return [*records, epoch, *split]


LEDGER = _ledger()


def test_an_untouched_ledger_checks_out() -> None:
    """The chain and the epoch signature hold, also against the trusted key."""
    assert check_chain(LEDGER, public_hex(KEY.public_key())) is None
    assert check_chain(LEDGER, "ff" * 32) is not None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_changing_any_byte_of_the_ledger_is_detected(data: st.DataObject) -> None:
    """Any byte of any stored field, changed to any other value, breaks the check."""
    index = data.draw(st.integers(0, len(LEDGER) - 1))
    record = LEDGER[index]
    field = data.draw(st.sampled_from(["record", "record_hash", "kind", "key"]))
    text = getattr(record, field)
    position = data.draw(st.integers(0, len(text) - 1))
    new = chr(data.draw(st.integers(0, 255).filter(lambda c: c != ord(text[position]))))
    changed = replace(record, **{field: text[:position] + new + text[position + 1 :]})
    tampered = [*LEDGER[:index], changed, *LEDGER[index + 1 :]]
    divergence = check_chain(tampered)
    assert divergence is not None and divergence.seq == index


def test_a_rewritten_and_rehashed_record_is_still_caught() -> None:
    """Re-hashing an edited record breaks the next link; re-signing needs the operator's key."""
    edited = LEDGER[2].record.replace('"accepted":2', '"accepted":3')
    forged = replace(LEDGER[2], record=edited, record_hash=record_hash(edited.encode()))
    found = check_chain([*LEDGER[:2], forged, *LEDGER[3:]])
    assert found is not None and found.seq == 3
    removed = check_chain([*LEDGER[:1], *LEDGER[2:]])
    assert removed is not None and "sequence" in removed.problem
