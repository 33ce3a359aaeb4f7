"""Merkle trees with domain-separated SHA-256 (RFC 6962 shape), their roots and inclusion proofs.

Leaves are hashed as H(tag, 0x00, data) and nodes as H(tag, 0x01, left, right), so a leaf can
never pass for a node. An odd node at the end of a level moves up unchanged (RFC 6962), rather
than being paired with itself (Bitcoin's duplication lets two leaf lists share a root).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rewards.canonical import tagged_sha256

LEAF = b"\x00"
NODE = b"\x01"
EMPTY_ROOT_DATA = b"empty"
FRAME_CHUNK = 1024


@dataclass(frozen=True)
class ProofStep:
    """One sibling on the way to the root: its hash and on which side it joins."""

    side: str  # "left" or "right": where the sibling sits
    sibling: str  # hex


def leaf_hash(tag: bytes, data: bytes) -> bytes:
    """The hash of one leaf."""
    return tagged_sha256(tag, LEAF, data)


def node_hash(tag: bytes, left: bytes, right: bytes) -> bytes:
    """The hash of an inner node."""
    return tagged_sha256(tag, NODE, left, right)


def _next_level(tag: bytes, level: list[bytes]) -> list[bytes]:
    paired = [node_hash(tag, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def root_of_hashes(tag: bytes, hashes: Sequence[bytes]) -> bytes:
    """The root over already hashed leaves; an empty tree has a fixed, tagged root."""
    if not hashes:
        return tagged_sha256(tag, EMPTY_ROOT_DATA)
    level = list(hashes)
    while len(level) > 1:
        level = _next_level(tag, level)
    return level[0]


def merkle_root(tag: bytes, leaves: Sequence[bytes]) -> bytes:
    """The root over `leaves` in the order given (callers sort them first)."""
    return root_of_hashes(tag, [leaf_hash(tag, leaf) for leaf in leaves])


def inclusion_proof(tag: bytes, leaves: Sequence[bytes], index: int) -> list[ProofStep]:
    """The siblings from leaf `index` up to the root."""
    if not 0 <= index < len(leaves):
        msg = f"leaf {index} is not in a tree of {len(leaves)} leaves"
        raise IndexError(msg)
    level = [leaf_hash(tag, leaf) for leaf in leaves]
    steps: list[ProofStep] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            side = "left" if sibling < index else "right"
            steps.append(ProofStep(side, level[sibling].hex()))
        level = _next_level(tag, level)
        index //= 2
    return steps


def root_from_proof(tag: bytes, leaf: bytes, steps: Sequence[ProofStep]) -> bytes:
    """The root a leaf and its proof lead to (compare it with the signed root)."""
    current = leaf_hash(tag, leaf)
    for step in steps:
        sibling = bytes.fromhex(step.sibling)
        if step.side == "left":
            current = node_hash(tag, sibling, current)
        elif step.side == "right":
            current = node_hash(tag, current, sibling)
        else:
            msg = f"proof step side {step.side!r} is neither 'left' nor 'right'"
            raise ValueError(msg)
    return current


def sorted_rows(ids: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """32-byte ids sorted as byte strings: by their first 8 bytes (ids are hashes, so these nearly
    never tie), with a full sort only when some do."""
    if len(ids) == 0:
        return ids
    leading = np.ascontiguousarray(ids[:, :8]).view(">u8").ravel().astype(np.uint64)
    order = np.argsort(leading)
    first = leading[order]
    if bool(np.any(first[1:] == first[:-1])):
        words = np.ascontiguousarray(ids).view(">u8").reshape(len(ids), 4)
        order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0]))
    # np.take on 8-byte words moves rows several times faster than fancy indexing on bytes.
    rows = np.take(np.ascontiguousarray(ids).view(np.uint64).reshape(len(ids), 4), order, axis=0)
    return rows.view(np.uint8).reshape(len(ids), 32)


def frame_set_root(tag: bytes, ids: NDArray[np.uint8], chunk: int = FRAME_CHUNK) -> bytes:
    """Root over a set of 32-byte ids: sorted, then `chunk` ids per leaf (hashing ten million ids
    one per leaf would take most of an epoch's time budget; a frame's inclusion is shown by its
    chunk and the chunk's path)."""
    data = sorted_rows(ids).tobytes()
    width = 32 * chunk
    return merkle_root(tag, [data[i : i + width] for i in range(0, len(data), width)])
