"""Alembic's entry point: runs the revisions on the connection that ``schema.upgrade_schema`` passes.

There is no ``alembic.ini`` and no URL: the caller holds the catalog connection, the
verifier's advisory lock and the transaction, and passes them as
``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from include.backup_integrity.catalog.schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError(
        "the verifier's migrations run only through "
        "include.backup_integrity.catalog.schema.upgrade_schema(conn), on a live catalog connection: "
        "the baseline compares the tables already there"
    )

context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
