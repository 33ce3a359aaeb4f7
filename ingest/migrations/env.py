"""Alembic environment: migrations run on the connection `ingest.db.migrate` hands over."""

from __future__ import annotations

from alembic import context

from ingest.catalog import Base

# Autogenerating a revision compares against every table of the catalog: import the modules that
# declare tables on this base first (`mapbuilder.catalog` for the road network, `rewards.ledger`
# and `rewards.inputs` for the ledger and its frames index), or autogenerate
# would propose dropping them. Upgrades need no imports: revisions are plain DDL.
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
