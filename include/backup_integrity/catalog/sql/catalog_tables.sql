-- The catalog's two tables as the Django app creates them (backups_backup and
-- backups_backupalert). Shipped for standalone use, demos and tests; the
-- verifier never changes their columns in a real database (revision 0009_console_indexes
-- adds indexes to the alert table, for the console's pages).
CREATE TABLE IF NOT EXISTS backups_backup (
    id uuid PRIMARY KEY,
    backup_type text NOT NULL,
    filename text NOT NULL,
    size_bytes bigint NULL,
    checksum text NULL,            -- hex SHA-256 of the content
    local_path text NULL,          -- relative to local_root
    r2_path text NULL,             -- object key in the R2 bucket
    b2_path text NULL,             -- object key in the B2 bucket
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS backups_backupalert (
    id bigserial PRIMARY KEY,
    backup_id uuid NULL REFERENCES backups_backup (id),
    alert_type text NOT NULL,
    severity text NOT NULL,
    message text NOT NULL,
    details jsonb NOT NULL,
    notification_channels jsonb NOT NULL,
    status text NOT NULL,          -- ACTIVE | ACKNOWLEDGED | RESOLVED
    acknowledged_at timestamptz NULL,
    acknowledged_by text NULL,
    resolved_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
