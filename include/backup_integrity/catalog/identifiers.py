"""Table names from the settings, always quoted as identifiers (never spliced into SQL as text)."""

from __future__ import annotations

from include.backup_integrity.catalog.connection import sql


def table(name: str) -> sql.Composable:
    """A possibly schema-qualified table name, quoted."""
    return sql.Identifier(*name.split("."))
