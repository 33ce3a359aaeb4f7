"""One builder per block: a lease row taken before a block is built and dropped after.

Two builders of one block could otherwise finish in the wrong order, the slower writing older
tiles over newer ones. A builder that finds the block leased leaves it: the holder looks for
marks that arrived while it worked after dropping the lease, and queues the block again.

A Celery task holds the lease under its task id, so the same task delivered again after its worker
died takes its own lease back at once instead of waiting for it to lapse.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from ingest.db import Catalog
from mapbuilder.tiles.catalog import BlockLease
from mapbuilder.tiles.dirty import Block


def new_holder() -> str:
    """A name for this builder, unique across hosts and processes."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def task_holder(task_id: str) -> str:
    """The holder name of a Celery task: the same in every delivery of its message."""
    return f"task-{task_id}"


def acquire(
    catalog: Catalog, layer_name: str, block: Block, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Take the block's lease (free, expired, or already `holder`'s: a task delivered again);
    False when another builder holds it."""
    z, bx, by = block
    insert = postgresql.insert if catalog.engine.dialect.name == "postgresql" else sqlite.insert
    values = {"layer": layer_name, "z": z, "bx": bx, "by": by, "holder": holder}
    expires = now + timedelta(seconds=ttl_s)
    statement = (
        insert(BlockLease)
        .values(**values, expires_at=expires)
        .on_conflict_do_update(
            index_elements=["layer", "z", "bx", "by"],
            set_={"holder": holder, "expires_at": expires},
            where=(BlockLease.expires_at < now) | (BlockLease.holder == holder),
        )
        .returning(BlockLease.holder)
    )
    with catalog.session() as session:
        # A row comes back when the lease was inserted or taken over, none when it is held.
        return session.execute(statement).first() is not None


def release(catalog: Catalog, layer_name: str, block: Block, holder: str) -> None:
    """Drop the lease if this builder still holds it."""
    z, bx, by = block
    with catalog.session() as session:
        session.execute(
            delete(BlockLease).where(
                BlockLease.layer == layer_name,
                BlockLease.z == z,
                BlockLease.bx == bx,
                BlockLease.by == by,
                BlockLease.holder == holder,
            )
        )
