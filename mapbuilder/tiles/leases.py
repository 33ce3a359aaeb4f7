"""One builder per block: a lease row taken before a block is built and dropped after.

Two builders of one block could otherwise finish in the wrong order, the slower writing older
tiles over newer ones. A builder that finds the block leased leaves it: the holder looks for
marks that arrived while it worked after dropping the lease, and queues the block again.

A Celery task holds the lease under its task id, so the same task delivered again after its worker
died takes its own lease back at once instead of waiting for it to lapse.

A lease is short (a minute by default) and renewed while its block is built (`LeaseKeeper`): a
builder that dies with its worker or its machine lets go within one term, whoever builds the
block next, however long builds take.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ingest.catalog import utcnow
from ingest.db import Catalog
from mapbuilder.tiles.catalog import BlockLease
from mapbuilder.tiles.dirty import Block

log = logging.getLogger(__name__)


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
    with catalog.session() as session:
        session.execute(delete(BlockLease).where(*_held_by(layer_name, block, holder)))


def renew(
    catalog: Catalog, layer_name: str, block: Block, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Extend `holder`'s lease to `now` + `ttl_s`; False when `holder` no longer holds it (it
    lapsed and another builder took it)."""
    with catalog.session() as session:
        renewed = session.execute(
            update(BlockLease)
            .where(*_held_by(layer_name, block, holder))
            .values(expires_at=now + timedelta(seconds=ttl_s))
            .returning(BlockLease.holder)
        )
        return renewed.first() is not None


def _held_by(layer_name: str, block: Block, holder: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions for the lease row of `block` held by `holder`."""
    z, bx, by = block
    return (
        BlockLease.layer == layer_name,
        BlockLease.z == z,
        BlockLease.bx == bx,
        BlockLease.by == by,
        BlockLease.holder == holder,
    )


class LeaseKeeper:
    """Renews a held lease every third of its term on a daemon thread while a block is built.

    `lost` turns true once a renewal finds the lease taken by another builder, or none has
    succeeded for a whole term (the catalog unreachable): the build must then write nothing
    more. Only a stopped process loses its lease this way; a busy one keeps it, as the thread
    runs while the build computes."""

    def __init__(
        self, catalog: Catalog, layer_name: str, block: Block, holder: str, ttl_s: float
    ) -> None:
        self._renew = (catalog, layer_name, block, holder)
        self.ttl_s = ttl_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"lease-{block}", daemon=True)

    @property
    def lost(self) -> bool:
        """Whether the lease may now be another builder's."""
        return self._lost.is_set()

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self._renewed():
                _, layer_name, block, holder = self._renew
                log.error(
                    "the lease of %s block %s held by %s was lost (not renewed within %.0f s): "
                    "the build stops writing, and the block's next builder builds it",
                    layer_name,
                    block,
                    holder,
                    self.ttl_s,
                )
                self._lost.set()
                return

    def _renewed(self) -> bool:
        """One renewal: whether the lease is still ours."""
        try:
            held = renew(*self._renew, utcnow(), self.ttl_s)
        except SQLAlchemyError as exc:
            # Unreachable for now: still ours until the term since the last renewal ends.
            log.warning("could not renew the lease of block %s: %s", self._renew[2], exc)
            return time.monotonic() - self._renewed_at < self.ttl_s
        if held:
            self._renewed_at = time.monotonic()
        return held
