"""The console: notices delivered through a digest, and the indexes the console's pages read by.

Revision ID: 0009_console_indexes
Revises: 0005_notice_expiry

``backup_integrity_notification.digest_run_id`` records that a notice went out as
part of the digest of that run (a run that queued more than ``notify_digest_after``
notices), so it is never sent on its own as well. Adding a NULL column rewrites no
row. The alert table (the application's) gets indexes only, never columns.
"""

from __future__ import annotations

from alembic import op

revision = "0009_console_indexes"
down_revision = "0005_notice_expiry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    exists = bind.exec_driver_sql(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'backup_integrity_notification' AND column_name = 'digest_run_id'"
    ).fetchone()
    if exists is None:  # the shipped SQL, run by hand, may have added it already
        op.execute("ALTER TABLE backup_integrity_notification ADD COLUMN digest_run_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE backup_integrity_notification DROP COLUMN IF EXISTS digest_run_id")
