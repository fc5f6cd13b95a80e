"""Adopting tables that exist before their first revision: compare with the catalogs, add what is missing.

Releases before the migrations created the verifier's tables with ``CREATE … IF NOT
EXISTS``, so a database may hold all of them, some of them, or a table a later release
widened. A revision that adopts declares its tables as PostgreSQL's catalogs describe
them (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``, ``pg_get_indexdef``);
:func:`adopt` then creates what is missing and refuses, before any DDL, on anything
that differs. It never drops, rewrites or alters what is there. Extra columns and
indexes of the user's are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.schema import SchemaMismatch

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """A column as ``format_type`` and ``pg_get_expr`` print it; ``create_as`` where DDL says it otherwise."""

    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    create_as: str | None = None

    def ddl(self) -> str:
        if self.create_as:
            return f"{self.name} {self.create_as}"
        not_null = " NOT NULL" if self.not_null else ""
        default = f" DEFAULT {self.default}" if self.default is not None else ""
        return f"{self.name} {self.type}{not_null}{default}"

    def describe(self) -> str:
        default = f" default {self.default}" if self.default is not None else ""
        return f"{self.type} {'NOT NULL' if self.not_null else 'NULL'}{default}"

    def rewrites_rows(self) -> bool:
        """Adding it to a table with rows writes every row or fails: a serial, NOT NULL without default."""
        return self.create_as is not None or (self.not_null and self.default is None)


@dataclass(frozen=True)
class Constraint:
    """A primary key or unique constraint, as ``pg_get_constraintdef`` prints it."""

    name: str
    definition: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...] = ()

    def ddl(self) -> str:
        parts = [column.ddl() for column in self.columns]
        parts += [f"CONSTRAINT {c.name} {c.definition}" for c in self.constraints]
        return f"CREATE TABLE {self.name} (\n    " + ",\n    ".join(parts) + "\n)"


@dataclass(frozen=True)
class Index:
    """A plain (non-unique) index; ``definition`` is what ``pg_get_indexdef`` prints after ``USING``."""

    name: str
    table: str
    definition: str

    def ddl(self) -> str:
        return f"CREATE INDEX {self.name} ON {self.table} USING {self.definition}"


@dataclass
class _Found:
    """What the catalogs hold under the declared names, in the current schema."""

    relkinds: dict[str, str]
    columns: dict[str, dict[str, Column]]
    constraints: dict[str, dict[str, str]]
    indexes: dict[str, tuple[str, bool, bool, str]]
    rows: dict[str, bool]


RELKINDS = {"r": "a table", "p": "a partitioned table", "i": "an index", "v": "a view", "S": "a sequence"}


def adopt(bind: Any, revision: str, tables: Iterable[Table], indexes: Iterable[Index]) -> list[str]:
    """Create whichever declared table, column, constraint and index is missing; returns the DDL run.

    Raises :class:`SchemaMismatch`, naming each difference, before running any DDL when
    something declared exists in another form.
    """
    tables, indexes = list(tables), list(indexes)
    found = _describe(bind, tables, indexes)
    differences: list[str] = []
    plan: list[str] = []
    for table in tables:
        kind = found.relkinds.get(table.name)
        if kind is None:
            plan.append(table.ddl())
            continue
        if kind != "r":
            differences.append(f"{table.name} is {RELKINDS.get(kind, 'another object')}, not a table")
            continue
        columns = found.columns.get(table.name, {})
        for column in table.columns:
            present = columns.get(column.name)
            if present is None:
                if column.rewrites_rows() and found.rows.get(table.name):
                    differences.append(
                        f"{table.name}.{column.name} is missing and cannot be added to a table with rows "
                        f"({column.describe()})"
                    )
                else:
                    plan.append(f"ALTER TABLE {table.name} ADD COLUMN {column.ddl()}")
            elif (present.type, present.not_null, present.default) != (
                column.type,
                column.not_null,
                column.default,
            ):
                differences.append(
                    f"{table.name}.{column.name} is {present.describe()}, "
                    f"the baseline has {column.describe()}"
                )
        constraints = found.constraints.get(table.name, {})
        for constraint in table.constraints:
            present_definition = constraints.get(constraint.name)
            if present_definition is None:
                plan.append(
                    f"ALTER TABLE {table.name} ADD CONSTRAINT {constraint.name} {constraint.definition}"
                )
            elif present_definition != constraint.definition:
                differences.append(
                    f"{table.name} constraint {constraint.name} is {present_definition}, "
                    f"the baseline has {constraint.definition}"
                )
    for index in indexes:
        present_index = found.indexes.get(index.name)
        kind = found.relkinds.get(index.name)
        if present_index is None and kind is None:
            plan.append(index.ddl())
        elif present_index is None:
            differences.append(f"{index.name} is {RELKINDS.get(kind or '', 'another object')}, not an index")
        else:
            on_table, unique, valid, definition = present_index
            if (on_table, unique, definition) != (index.table, False, index.definition):
                shown = f"{'UNIQUE ' if unique else ''}on {on_table} USING {definition}"
                differences.append(
                    f"index {index.name} is {shown}, "
                    f"the baseline has on {index.table} USING {index.definition}"
                )
            elif not valid:
                differences.append(f"index {index.name} is invalid (an interrupted build)")
    if differences:
        raise SchemaMismatch(
            f"the verifier's tables in the catalog differ from revision {revision}, so nothing was changed: "
            + "; ".join(differences)
        )
    for statement in plan:
        log.info("schema %s: %s", revision, statement.splitlines()[0])
        _execute(bind, revision, statement)
    return plan


def _execute(bind: Any, revision: str, statement: str) -> None:
    from sqlalchemy.exc import DBAPIError

    try:
        bind.exec_driver_sql(statement)
    except DBAPIError as error:
        raise SchemaMismatch(
            f"revision {revision} could not run {statement.splitlines()[0]!r}: {error.orig}"
        ) from error


def _describe(bind: Any, tables: list[Table], indexes: list[Index]) -> _Found:
    from sqlalchemy import text

    table_names = [t.name for t in tables]
    names = table_names + [i.name for i in indexes]
    schema = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
    relkinds = dict(
        bind.execute(
            text(
                "SELECT relname, relkind FROM pg_class "
                f"WHERE relnamespace = {schema} AND relname = ANY(:names)"
            ),
            {"names": names},
        ).fetchall()
    )
    columns: dict[str, dict[str, Column]] = {}
    for table, name, type_, not_null, default in bind.execute(
        text(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
            f"WHERE c.relnamespace = {schema} AND c.relkind = 'r' AND c.relname = ANY(:names)"
        ),
        {"names": table_names},
    ).fetchall():
        columns.setdefault(table, {})[name] = Column(name, type_, not_null, default)
    constraints: dict[str, dict[str, str]] = {}
    for table, name, definition in bind.execute(
        text(
            "SELECT t.relname, con.conname, pg_get_constraintdef(con.oid) FROM pg_constraint con "
            "JOIN pg_class t ON t.oid = con.conrelid "
            f"WHERE t.relnamespace = {schema} AND t.relname = ANY(:names)"
        ),
        {"names": table_names},
    ).fetchall():
        constraints.setdefault(table, {})[name] = definition
    found_indexes = {
        name: (table, unique, valid, definition.split(" USING ", 1)[1])
        for name, table, unique, valid, definition in bind.execute(
            text(
                "SELECT i.relname, t.relname, x.indisunique, x.indisvalid, pg_get_indexdef(i.oid) "
                "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid "
                f"WHERE i.relnamespace = {schema} AND i.relname = ANY(:names)"
            ),
            {"names": [i.name for i in indexes]},
        ).fetchall()
    }
    rows = {
        name: bool(bind.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {name})").scalar())
        for name, kind in relkinds.items()
        if kind == "r" and name in table_names
    }
    return _Found(relkinds, columns, constraints, found_indexes, rows)
