"""Connecting to the catalog and bringing its schema up to date.

`ROADSWARM_DATABASE_URL` names it: `postgresql+psycopg://user@host/db` in production,
`sqlite:///path/catalog.sqlite3` embedded. SQLite gets WAL (readers never block the writer) and a
busy timeout, so an API and several worker processes can share one file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ingest.errors import CatalogError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_catalog_engine(url: str) -> Engine:
    """An engine for `url`; SQLite connections are set up for several concurrent processes."""
    if not url:
        msg = "No catalog database: set ROADSWARM_DATABASE_URL (e.g. sqlite:///catalog.sqlite3)"
        raise CatalogError(msg)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        msg = f"cannot use {url!r} as the catalog database ({exc}): use a postgresql+psycopg:// or sqlite:/// URL"
        raise CatalogError(msg) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: object) -> None:
    """WAL so readers never wait for the writer; FULL sync because the catalog is the truth."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        msg = f"cannot migrate the catalog at {engine.url!r} ({exc.orig}): is the database running?"
        raise CatalogError(msg) from exc


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest revision (readiness checks ask this)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == head


class Catalog:
    """An engine and its session factory: the one handle every ingest function takes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str, *, migrate_schema: bool = True) -> Catalog:
        """Open the catalog at `url`, migrating it first unless told not to."""
        engine = create_catalog_engine(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back on error."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (workers do this after fork)."""
        self.engine.dispose()
