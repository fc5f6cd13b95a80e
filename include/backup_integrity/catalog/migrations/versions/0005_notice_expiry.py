"""Notice expiry: a notice not delivered within ``notice_max_age_hours`` is marked expired.

Revision ID: 0005_notice_expiry
Revises: 0004_alert_markers

A notice is retried until every target accepted it or it is older than the
Variable's ``notice_max_age_hours``; then ``expired_at`` records that it was given
up (never sent late, never dropped silently). Adding a NULL column rewrites no row.
"""

from __future__ import annotations

from alembic import op

revision = "0005_notice_expiry"
down_revision = "0004_alert_markers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    exists = bind.exec_driver_sql(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'backup_integrity_notification' AND column_name = 'expired_at'"
    ).fetchone()
    if exists is None:  # the shipped SQL, run by hand, may have added it already
        op.execute("ALTER TABLE backup_integrity_notification ADD COLUMN expired_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE backup_integrity_notification DROP COLUMN IF EXISTS expired_at")
