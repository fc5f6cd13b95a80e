"""Store capabilities: what each S3 store was found to offer, learned over runs.

Revision ID: 0007_store_capabilities
Revises: 0006_bounded_growth

One row per store name: how many objects were probed in checksum mode in the current
period and how many answered with a whole-object SHA-256, whether the store rejects the
``x-amz-checksum-mode`` header, whether its listings carry checksum fields. A new table:
no existing row is touched.
"""

from __future__ import annotations

from alembic import op

revision = "0007_store_capabilities"
down_revision = "0006_bounded_growth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS backup_integrity_store_capability ("
        " store text PRIMARY KEY,"
        " checksum_probes integer NOT NULL DEFAULT 0,"
        " sha256_answers integer NOT NULL DEFAULT 0,"
        " rejects_checksum_mode boolean NULL,"
        " listing_checksums boolean NULL,"
        " period_started_at timestamptz NOT NULL DEFAULT now(),"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS backup_integrity_store_capability")
