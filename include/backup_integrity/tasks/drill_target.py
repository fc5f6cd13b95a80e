"""The restore target: the ``backup_restore_target`` server and the scratch databases drills use.

A pg_dump backup is restored into a new database named ``restore_drill_`` and 8 hex
characters, created with a comment that records when, and dropped ``WITH (FORCE)``
when the drill ends; a drill also drops such databases older than ``timeout_minutes``
(a crash left them). No other database is ever created or dropped. Before anything,
the target is compared with the catalog by ``system_identifier`` and
``current_database()``: a drill never runs against the catalog's own database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.drills import server_identity
from include.backup_integrity.config.drill_settings import RESTORE_TARGET_CONN_ID
from include.backup_integrity.domain.drills import (
    CHECK,
    RESTORE,
    environment_failed,
    leftover_scratch_databases,
    rejected,
    scratch_comment,
    scratch_database_name,
)
from include.backup_integrity.tasks.drill_tools import minimal_env

if TYPE_CHECKING:
    from datetime import timedelta

    from include.backup_integrity.tasks.drill_tools import Deadline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreTarget:
    """The ``backup_restore_target`` server: where scratch databases are created."""

    host: str | None
    port: int | None
    login: str | None
    password: str | None
    maintenance_database: str
    sslmode: str | None = None

    @classmethod
    def from_connection(cls, conn: Any) -> RestoreTarget:
        extra = conn.extra_dejson or {}
        return cls(
            host=conn.host or None,
            port=conn.port or None,
            login=conn.login or None,
            password=conn.password or None,
            maintenance_database=conn.schema or "postgres",
            sslmode=extra.get("sslmode"),
        )

    def connect(self, database: str | None = None, *, autocommit: bool = False) -> Any:
        import psycopg

        kwargs: dict[str, Any] = {
            "dbname": database or self.maintenance_database,
            "connect_timeout": 10,
            "application_name": "restore_drill",
            "autocommit": autocommit,
        }
        for key, value in (
            ("host", self.host),
            ("port", self.port),
            ("user", self.login),
            ("password", self.password),
            ("sslmode", self.sslmode),
        ):
            if value:
                kwargs[key] = value
        return psycopg.connect(**kwargs)

    def tool_arguments(self, database: str) -> list[str]:
        """libpq options for pg_restore and psql; the password is never one of them."""
        argv = ["--dbname", database, "--no-password"]
        if self.host:
            argv += ["--host", self.host]
        if self.port:
            argv += ["--port", str(self.port)]
        if self.login:
            argv += ["--username", self.login]
        return argv

    def tool_env(self, work_dir: str) -> dict[str, str]:
        extra = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "restore_drill", "PGPASSFILE": os.devnull}
        if self.password:
            extra["PGPASSWORD"] = self.password
        if self.sslmode:
            extra["PGSSLMODE"] = self.sslmode
        return minimal_env(work_dir, **extra)


def reachable(target: RestoreTarget) -> bool:
    """Whether the target server accepts a connection now."""
    try:
        target.connect().close()
    except Exception:
        return False
    return True


def defined_restore_target() -> RestoreTarget | None:
    """``backup_restore_target`` when it is defined, else None (its pg_dump drills then end ``error``)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return RestoreTarget.from_connection(BaseHook.get_connection(RESTORE_TARGET_CONN_ID))
    except AirflowNotFoundException:
        return None


def load_restore_target() -> RestoreTarget:
    target = defined_restore_target()
    if target is None:
        raise environment_failed(
            RESTORE,
            f"Airflow connection {RESTORE_TARGET_CONN_ID!r} (the server pg_dump backups are restored "
            "into) is not defined",
        )
    return target


def drop_leftovers_of_the_deployment(timeout: timedelta) -> list[str]:
    """Once per drill run: the leftovers on ``backup_restore_target``, when it is defined (best effort)."""
    target = defined_restore_target()
    if target is None:
        log.info(
            "Airflow connection %r is not defined: no leftover scratch databases to look for",
            RESTORE_TARGET_CONN_ID,
        )
        return []
    return drop_leftovers(target, timeout)


def refuse_catalog_database(target: RestoreTarget, catalog_identity: tuple[str, str] | None) -> None:
    """Never drill against the catalog's own database, whatever the host names say."""
    try:
        conn = target.connect()
    except Exception as exc:
        raise environment_failed(
            RESTORE, f"the target server ({RESTORE_TARGET_CONN_ID}) cannot be reached: {exc}"
        ) from None
    try:
        identity = server_identity(conn)
    except Exception as exc:
        raise environment_failed(RESTORE, f"the target server's identity cannot be read: {exc}") from None
    finally:
        conn.close()
    if catalog_identity is not None and tuple(identity) == tuple(catalog_identity):
        raise environment_failed(
            RESTORE,
            f"refusing to drill: {RESTORE_TARGET_CONN_ID} is the catalog's own database "
            f"(system_identifier {identity[0]}, database {identity[1]!r}, as backup_catalog); "
            "point it at another server or database",
        )


def create_scratch_database(target: RestoreTarget, run_id: str) -> str:
    from psycopg import sql

    name = scratch_database_name(secrets.token_hex(4))
    try:
        with target.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(scratch_comment(datetime.now(UTC), run_id))
                )
            )
    except Exception as exc:
        with contextlib.suppress(Exception):
            drop_scratch_database(target, name)
        raise environment_failed(
            RESTORE, f"CREATE DATABASE on {RESTORE_TARGET_CONN_ID} was refused: {exc}"
        ) from None
    return name


def drop_scratch_database(target: RestoreTarget, name: str) -> bool:
    """Drop one scratch database (only ever one of the generated names)."""
    from psycopg import sql

    scratch_database_name(name.removeprefix("restore_drill_"))  # refuses any other name
    try:
        with target.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except Exception:
        log.exception("could not drop the scratch database %s; a later drill drops it", name)
        return False
    return True


def drop_leftovers(target: RestoreTarget, timeout: timedelta) -> list[str]:
    """Drop scratch databases older than a drill may last: a crashed drill left them."""
    try:
        with target.connect() as conn:
            rows = conn.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname LIKE 'restore\\_drill\\_%'"
            ).fetchall()
    except Exception as exc:
        log.warning("could not list leftover scratch databases: %s", exc)
        return []
    dropped = [
        name
        for name in leftover_scratch_databases(rows, datetime.now(UTC), timeout)
        if drop_scratch_database(target, name)
    ]
    if dropped:
        log.warning("dropped scratch databases left by an earlier drill: %s", ", ".join(dropped))
    return dropped


def run_checks(target: RestoreTarget, database: str, checks: list[str], deadline: Deadline) -> None:
    """Each check must return exactly one true value; an error or anything else rejects the backup."""
    import psycopg

    if not checks:
        return
    try:
        conn = target.connect(database)
    except Exception as exc:
        raise environment_failed(CHECK, f"the restored database cannot be reached: {exc}") from None
    try:
        for number, query in enumerate(checks, start=1):
            remaining_ms = int(deadline.remaining() * 1000)
            if remaining_ms <= 0:
                raise deadline.exceeded(CHECK)
            try:
                conn.execute(f"SET statement_timeout = {remaining_ms}")
                rows = conn.execute(query).fetchall()
            except psycopg.errors.QueryCanceled:
                raise deadline.exceeded(CHECK) from None
            except psycopg.OperationalError as exc:
                raise environment_failed(CHECK, f"check {number} could not run: {exc}") from None
            except psycopg.Error as exc:
                raise rejected(
                    CHECK, f"check {number} ({query}) failed: {' '.join(str(exc).split())}"
                ) from None
            finally:
                with contextlib.suppress(Exception):
                    conn.rollback()
            if not (len(rows) == 1 and len(rows[0]) == 1 and rows[0][0] is True):
                raise rejected(CHECK, f"check {number} ({query}) returned {rows!r}, not one true value")
    finally:
        conn.close()
