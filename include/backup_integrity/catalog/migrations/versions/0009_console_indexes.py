"""The console: notices delivered through a digest, and the indexes the console's pages read by.

Revision ID: 0009_console_indexes
Revises: 0008_recovery_chain

``backup_integrity_notification.digest_run_id`` records that a notice went out as
part of the digest of that run (a run that queued more than ``notify_digest_after``
notices), so it is never sent on its own as well. Adding a NULL column rewrites no
row.

The alert table (the application's, named by the Variable's ``alerts_table``) gets
indexes only, never columns: by backup (a backup's page, the overview's "only
failing"; skipped when the application already has an index on ``backup_id``, as
Django's foreign key makes one), by status and creation time (open alerts, the
alerts page's status filter) and, for the package's own rows only, by creation time
(the alerts page's default order and its count).
Building them takes a share lock on the table for as long as it takes to read it once.
"""

from __future__ import annotations

from alembic import context, op

from include.backup_integrity.catalog.alert_markers import quoted

revision = "0009_console_indexes"
down_revision = "0008_recovery_chain"
branch_labels = None
depends_on = None

#: The package's own rows (``details.source``), as the console's queries spell it: a literal, so
#: that the planner can use the partial index below.
OWN_ROWS = """details @> '{"source": "verify_storage_integrity"}'::jsonb"""
#: name: (columns and predicate, whether an index on the same leading column makes it unnecessary)
ALERT_INDEXES = {
    "backup_integrity_alert_backup_idx": ("(backup_id)", True),
    "backup_integrity_alert_status_idx": ("(status, created_at DESC)", False),
    "backup_integrity_alert_created_idx": (f"(created_at DESC, id DESC) WHERE {OWN_ROWS}", False),
}


def upgrade() -> None:
    bind = op.get_bind()
    exists = bind.exec_driver_sql(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'backup_integrity_notification' AND column_name = 'digest_run_id'"
    ).fetchone()
    if exists is None:  # the shipped SQL, run by hand, may have added it already
        op.execute("ALTER TABLE backup_integrity_notification ADD COLUMN digest_run_id text")
    alerts_table = quoted(context.config.attributes["alerts_table"])
    if bind.exec_driver_sql("SELECT to_regclass(%s)", (alerts_table,)).scalar() is None:
        return  # no alert table yet: the application creates it; a later release's upgrade indexes it
    for name, (columns, any_leading) in ALERT_INDEXES.items():
        leading = columns.strip("(").split(",")[0].split()[0].rstrip(")")
        present = bind.exec_driver_sql(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = %s::regclass AND (c.relname = %s OR (%s AND a.attname = %s))",
            (alerts_table, name, any_leading, leading),
        ).fetchone()
        if present is None:
            op.execute(f"CREATE INDEX {name} ON {alerts_table} {columns}")


def downgrade() -> None:
    alerts_table = context.config.attributes["alerts_table"]
    schema = f"{quoted(alerts_table.rsplit('.', 1)[0])}." if "." in alerts_table else ""
    for name in ALERT_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {schema}{name}")
    op.execute("ALTER TABLE backup_integrity_notification DROP COLUMN IF EXISTS digest_run_id")
