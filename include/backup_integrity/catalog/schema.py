"""The verifier's own tables, versioned: which revision the catalog is at and bringing it to head.

The tables are managed by Alembic revisions in ``catalog/migrations/`` with their own
version table, so they never meet the application's or Airflow's migrations. Every
run's first task calls :func:`upgrade_schema`: it only reads the revision (no lock)
and migrates, under the verifier's advisory lock, only when the code is ahead of the
database. The dashboard reads :func:`schema_status` and never runs DDL.

The catalog's own tables (``backups_table``, ``alerts_table`` of the Variable) belong to
the application: no revision creates or alters them, whatever their names; one
(``0004_alert_markers``) marks, in the alert table, the rows earlier releases wrote.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import ADVISORY_LOCK_KEY, transaction
from include.backup_integrity.config.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.config import Config

log = logging.getLogger(__name__)

#: Alembic's version table for this package alone, in the catalog database.
VERSION_TABLE = "backup_integrity_alembic_version"

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: A migration may wait this long for each table lock (normal runs wait far less).
MIGRATION_LOCK_TIMEOUT = "60s"
#: A migration statement may run this long (a backfill of a large history table);
#: it is also how long an upgrader waits for another one that holds the lock.
MIGRATION_STATEMENT_TIMEOUT = "15min"


class SchemaError(Exception):
    """The catalog's schema cannot be brought to the revision this code needs."""


class SchemaMismatch(SchemaError):
    """Tables of the verifier exist but differ from what the baseline says: nothing was changed."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where the catalog's schema is and where this code wants it."""

    revision: str | None
    head: str
    known: bool

    @property
    def pending(self) -> bool:
        """An upgrade is due: the database is behind this code (or has none of its schema yet)."""
        return self.known and self.revision != self.head

    @property
    def waiting_message(self) -> str:
        return f"schema at revision {self.revision or 'none'}, waiting for the verifier"


@dataclass(frozen=True)
class SchemaUpgrade:
    """What one :func:`upgrade_schema` call found and did."""

    from_revision: str | None
    to_revision: str
    migrated: bool


def read_shipped_sql(name: str) -> str:
    """A script of ``catalog/sql/`` (the catalog's tables, or ours for standalone use)."""
    return resources.files("include.backup_integrity.catalog").joinpath("sql", name).read_text()


def alembic_config() -> Config:
    """Alembic's configuration for the package's revisions, without an ``alembic.ini``.

    Also what a developer passes to ``alembic.command.revision`` to write a new revision.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@functools.cache
def _revision_chain() -> tuple[str, ...]:
    """Every revision id, base first: the chain is linear, one head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    if len(heads) != 1:
        raise SchemaError(
            f"the package's migrations have {len(heads)} heads ({heads}); they must be one chain"
        )
    return tuple(reversed([revision.revision for revision in script.walk_revisions()]))


def head_revision() -> str:
    """The revision this code's tables are at."""
    return _revision_chain()[-1]


def current_revision(conn: Any) -> str | None:
    """The catalog's revision (``None`` before the first migration), read without any lock."""
    with transaction(conn) as cur:
        return _read_revision(lambda query: _fetch(cur, query))


def schema_status(conn: Any) -> SchemaStatus:
    """The revision the catalog is at, this code's head, and whether an upgrade is pending."""
    revision = current_revision(conn)
    return SchemaStatus(revision, head_revision(), revision is None or revision in _revision_chain())


def upgrade_schema(conn: Any, alerts_table: str | None = None) -> SchemaUpgrade:
    """Bring the catalog's schema to head: a read when it is there, a locked migration when not.

    Commits (the caller has no transaction open). Under the lock the revision is read
    again, so of concurrent upgraders one migrates and the others find head.
    ``alerts_table`` is the Variable's (default: its default): a revision that adopts
    the alert rows an earlier release wrote needs its name.
    """
    status = schema_status(conn)
    _require_known(status)
    if not status.pending:
        return SchemaUpgrade(status.revision, status.head, migrated=False)
    with _sqlalchemy_connection(conn) as bind, _verifier_lock(bind), bind.begin():
        bind.exec_driver_sql(f"SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
        bind.exec_driver_sql(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
        found = _read_revision(lambda query: bind.exec_driver_sql(query).fetchall())
        locked = SchemaStatus(found, status.head, found is None or found in _revision_chain())
        _require_known(locked)
        if not locked.pending:
            return SchemaUpgrade(found, status.head, migrated=False)
        from alembic import command

        log.info("upgrading the catalog's schema from revision %s to %s", found or "none", status.head)
        config = alembic_config()
        config.attributes["connection"] = bind
        config.attributes["alerts_table"] = alerts_table or Settings().alerts_table
        command.upgrade(config, "head")
        return SchemaUpgrade(found, status.head, migrated=True)


@contextmanager
def _verifier_lock(bind: Any) -> Iterator[None]:
    """Hold the verifier's advisory lock (session level) around the migration's transaction.

    Taken before that transaction begins, so the transaction sees every table another
    upgrader committed while this one waited (a transaction that waited for the lock
    would still resolve names from its own start). It waits as long as a migration
    statement may take: the holder may be another upgrader migrating.
    """
    with bind.begin():
        bind.exec_driver_sql(f"SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
        bind.exec_driver_sql(f"SET LOCAL lock_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
        bind.exec_driver_sql(f"SELECT pg_advisory_lock({int(ADVISORY_LOCK_KEY)})")
    try:
        yield
    finally:
        with suppress(Exception), bind.begin():  # a lost connection released it with its session
            bind.exec_driver_sql(f"SELECT pg_advisory_unlock({int(ADVISORY_LOCK_KEY)})")


def _fetch(cur: Any, query: str) -> list[tuple[Any, ...]]:
    cur.execute(query)
    return cur.fetchall()


def _read_revision(fetch: Any) -> str | None:
    (exists,) = fetch(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL")[0]
    if not exists:
        return None
    rows = fetch(f"SELECT version_num FROM {VERSION_TABLE}")
    if len(rows) > 1:
        found = ", ".join(sorted(row[0] for row in rows))
        raise SchemaError(f"{VERSION_TABLE} holds several revisions ({found}); the package's are one chain")
    return rows[0][0] if rows else None


def _require_known(status: SchemaStatus) -> None:
    if not status.known:
        raise SchemaError(
            f"the catalog's schema is at revision {status.revision}, which this code does not know "
            f"(its head is {status.head}): a newer release migrated it; run that release"
        )


@contextmanager
def _sqlalchemy_connection(conn: Any) -> Iterator[Any]:
    """A SQLAlchemy connection over the DB-API connection we hold (psycopg 3 or psycopg2).

    Alembic needs SQLAlchemy; the pool lends out this one connection and never closes it,
    and the migration must run in a transaction even on an autocommit connection. (On a
    psycopg2 connection SQLAlchemy registers its UUID type caster, as psycopg 3 has by default.)
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    driver = "psycopg2" if type(conn).__module__.startswith("psycopg2") else "psycopg"
    engine = create_engine(f"postgresql+{driver}://", creator=lambda: conn, poolclass=StaticPool)
    autocommit = bool(getattr(conn, "autocommit", False))
    if autocommit:
        conn.autocommit = False
    try:
        with engine.connect() as bind:
            yield bind
    finally:
        if autocommit:
            conn.autocommit = True
