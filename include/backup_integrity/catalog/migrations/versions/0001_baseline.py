"""Baseline: the verifier's tables as the last release before migrations created them.

Revision ID: 0001_baseline
Revises: (none)

That release ran ``integrity_tables.sql`` (``CREATE … IF NOT EXISTS``) on every run, so
a catalog may already hold all of these tables, some of them, or none: whatever is
missing is created and whatever differs stops the upgrade with what differs
(:func:`adoption.adopt`). The declarations below are frozen: a later change to the
tables is a later revision.
"""

from __future__ import annotations

from alembic import op

from include.backup_integrity.catalog.migrations.adoption import Column, Constraint, Index, Table, adopt

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

TIME = "timestamp with time zone"

TABLES = (
    # One row per DAG run: what it covered and the statistics it returned.
    Table(
        "backup_integrity_run",
        (
            Column("run_id", "text", not_null=True),
            Column("dag_id", "text", not_null=True),
            Column("mode", "text", not_null=True),
            Column("window_start", TIME),
            Column("window_end", TIME),
            Column("statistics", "jsonb", not_null=True),
            Column("recorded_at", TIME, not_null=True, default="now()"),
        ),
        (Constraint("backup_integrity_run_pkey", "PRIMARY KEY (run_id)"),),
    ),
    # One row per (run, backup, backend) check; backend is '' for an unroutable record.
    Table(
        "backup_integrity_result",
        (
            Column("run_id", "text", not_null=True),
            Column("backup_id", "uuid", not_null=True),
            Column("backend", "text", not_null=True),
            Column("kind", "text", not_null=True),
            Column("mode", "text", not_null=True),
            Column("evidence", "text"),
            Column("path", "text"),
            Column("message", "text", not_null=True),
            Column("expected", "jsonb"),
            Column("actual", "jsonb"),
            Column("checked_at", TIME, not_null=True),
        ),
        (Constraint("backup_integrity_result_pkey", "PRIMARY KEY (run_id, backup_id, backend)"),),
    ),
    # The distinct runs that observed each alert.
    Table(
        "backup_integrity_alert_occurrence",
        (
            Column("alert_id", "bigint", not_null=True),
            Column("run_id", "text", not_null=True),
            Column("checked_at", TIME, not_null=True),
        ),
        (Constraint("backup_integrity_alert_occurrence_pkey", "PRIMARY KEY (alert_id, run_id)"),),
    ),
    # The notification outbox.
    Table(
        "backup_integrity_notification",
        (
            Column(
                "id",
                "bigint",
                not_null=True,
                default="nextval('backup_integrity_notification_id_seq'::regclass)",
                create_as="bigserial",
            ),
            Column("alert_id", "bigint", not_null=True),
            Column("event", "text", not_null=True),
            Column("run_id", "text", not_null=True),
            Column("title", "text", not_null=True),
            Column("body", "text", not_null=True),
            Column("notify_type", "text", not_null=True),
            Column("created_at", TIME, not_null=True, default="now()"),
            Column("delivered_to", "jsonb", not_null=True, default="'[]'::jsonb"),
            Column("attempts", "integer", not_null=True, default="0"),
            Column("last_error", "text"),
            Column("last_attempt_at", TIME),
            Column("sent_at", TIME),
        ),
        (
            Constraint("backup_integrity_notification_pkey", "PRIMARY KEY (id)"),
            Constraint("backup_integrity_notification_alert_id_event_key", "UNIQUE (alert_id, event)"),
        ),
    ),
    # One row per (backup, backend): the check that last changed it and the proven SHA-256.
    Table(
        "backup_integrity_object",
        (
            Column("backup_id", "uuid", not_null=True),
            Column("backend", "text", not_null=True),
            Column("path", "text"),
            Column("last_kind", "text", not_null=True),
            Column("last_evidence", "text"),
            Column("last_checked_at", TIME, not_null=True),
            Column("last_run_id", "text", not_null=True),
            Column("fingerprint", "text"),
            Column("sha256", "text"),
            Column("sha256_evidence", "text"),
            Column("sha256_fingerprint", "text"),
            Column("sha256_verified_at", TIME),
            Column("last_read_at", TIME),
            Column("last_read_bytes", "bigint"),
            Column("probed_fingerprint", "text"),
        ),
        (Constraint("backup_integrity_object_pkey", "PRIMARY KEY (backup_id, backend)"),),
    ),
    # One row per (run, backup, backend) repair: planned, repaired, failed or refused.
    Table(
        "backup_integrity_repair",
        (
            Column("run_id", "text", not_null=True),
            Column("backup_id", "uuid", not_null=True),
            Column("backend", "text", not_null=True),
            Column("kind", "text", not_null=True),
            Column("status", "text", not_null=True),
            Column("source_backend", "text"),
            Column("sha256", "text"),
            Column("reason", "text", not_null=True),
            Column("error", "text"),
            Column("repaired_at", TIME),
            Column("recorded_at", TIME, not_null=True, default="now()"),
        ),
        (Constraint("backup_integrity_repair_pkey", "PRIMARY KEY (run_id, backup_id, backend)"),),
    ),
)

INDEXES = (
    Index(
        "backup_integrity_result_backup_idx",
        "backup_integrity_result",
        "btree (backup_id, backend, checked_at DESC)",
    ),
    Index("backup_integrity_result_checked_idx", "backup_integrity_result", "btree (checked_at)"),
    Index(
        "backup_integrity_notification_pending_idx",
        "backup_integrity_notification",
        "btree (id) WHERE (sent_at IS NULL)",
    ),
    Index(
        "backup_integrity_object_read_idx",
        "backup_integrity_object",
        "btree (backend, last_read_at NULLS FIRST, backup_id)",
    ),
    Index(
        "backup_integrity_repair_backup_idx",
        "backup_integrity_repair",
        "btree (backup_id, backend, recorded_at DESC)",
    ),
    # For the dashboard: failures by day, and the last byte-for-byte read of each copy.
    Index(
        "backup_integrity_result_failed_idx",
        "backup_integrity_result",
        "btree (checked_at) WHERE (kind <> 'passed'::text)",
    ),
    Index(
        "backup_integrity_result_content_idx",
        "backup_integrity_result",
        "btree (backup_id, backend, checked_at DESC) WHERE (evidence = 'content_sha256'::text)",
    ),
)


def upgrade() -> None:
    adopt(op.get_bind(), revision, TABLES, INDEXES)


def downgrade() -> None:
    raise NotImplementedError(
        "the baseline is not undone: it would drop the verifier's history; drop its tables by hand if meant"
    )
