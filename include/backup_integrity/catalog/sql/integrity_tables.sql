-- The verifier's own tables for standalone use (psql -f), as its migrations create them
-- at head (catalog/migrations; tests/db/test_schema.py keeps the two equal). The verifier
-- itself never runs this script: its first task applies the migrations.

-- One row per DAG run: what it covered and the statistics it returned.
CREATE TABLE IF NOT EXISTS backup_integrity_run (
    run_id text PRIMARY KEY,
    dag_id text NOT NULL,
    mode text NOT NULL,
    window_start timestamptz NULL,
    window_end timestamptz NULL,
    statistics jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The history behind every alert: each copy's first result and every change of its kind or
-- evidence (a steady pass or an unchanged failure adds no row), one per (run, backup, backend) at most.
-- backend is '' for a record that could not be routed to any backend.
CREATE TABLE IF NOT EXISTS backup_integrity_result (
    run_id text NOT NULL,
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    kind text NOT NULL,
    mode text NOT NULL,
    evidence text NULL,
    path text NULL,
    message text NOT NULL,
    expected jsonb NULL,
    actual jsonb NULL,
    checked_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, backup_id, backend)
);
CREATE INDEX IF NOT EXISTS backup_integrity_result_backup_idx
    ON backup_integrity_result (backup_id, backend, checked_at DESC);
CREATE INDEX IF NOT EXISTS backup_integrity_result_checked_idx
    ON backup_integrity_result (checked_at);

-- The distinct runs that observed each alert: details.occurrences is their count.
CREATE TABLE IF NOT EXISTS backup_integrity_alert_occurrence (
    alert_id bigint NOT NULL,
    run_id text NOT NULL,
    checked_at timestamptz NOT NULL,
    PRIMARY KEY (alert_id, run_id)
);

-- Notification outbox: written in the alert transaction, delivered after commit,
-- retried by later runs until every configured target has accepted it or it is
-- older than notice_max_age_hours (then expired_at is set and it is never sent).
CREATE TABLE IF NOT EXISTS backup_integrity_notification (
    id bigserial PRIMARY KEY,
    alert_id bigint NOT NULL,
    event text NOT NULL,
    run_id text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    notify_type text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_to jsonb NOT NULL DEFAULT '[]',
    attempts integer NOT NULL DEFAULT 0,
    last_error text NULL,
    last_attempt_at timestamptz NULL,
    sent_at timestamptz NULL,
    expired_at timestamptz NULL,   -- given up: older than notice_max_age_hours, never sent
    digest_run_id text NULL,       -- delivered through the digest of this run, never on its own
    UNIQUE (alert_id, event)
);
CREATE INDEX IF NOT EXISTS backup_integrity_notification_pending_idx
    ON backup_integrity_notification (id) WHERE sent_at IS NULL;

-- One row per (backup, backend): its last check (last_checked_at, last_run_id; an unchanged
-- object's steady pass sets only those two), the outcome, the store's fingerprint, and when the
-- object's SHA-256 was last proven (by reading it byte for byte, or by the store).
-- An hourly run passes an object whose listing fingerprint still equals sha256_fingerprint
-- without downloading it; last_read_at orders the rotating full re-hash (oldest first).
CREATE TABLE IF NOT EXISTS backup_integrity_object (
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    path text NULL,
    last_kind text NOT NULL,
    last_evidence text NULL,
    last_checked_at timestamptz NOT NULL,
    last_run_id text NOT NULL,
    fingerprint text NULL,
    sha256 text NULL,
    sha256_evidence text NULL,
    sha256_fingerprint text NULL,
    sha256_verified_at timestamptz NULL,
    last_read_at timestamptz NULL,
    last_read_bytes bigint NULL,
    probed_fingerprint text NULL,
    -- The object-lock retain-until date the last read found (NULL: none), and when it was read
    -- (revision 0008_recovery_chain).
    retain_until timestamptz NULL,
    retention_read_at timestamptz NULL,
    PRIMARY KEY (backup_id, backend)
);
CREATE INDEX IF NOT EXISTS backup_integrity_object_read_idx
    ON backup_integrity_object (backend, last_read_at NULLS FIRST, backup_id);

-- One row per (run, backup, backend) repair: planned, repaired, failed or refused.
CREATE TABLE IF NOT EXISTS backup_integrity_repair (
    run_id text NOT NULL,
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    source_backend text NULL,
    sha256 text NULL,
    reason text NOT NULL,
    error text NULL,
    repaired_at timestamptz NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, backup_id, backend)
);
CREATE INDEX IF NOT EXISTS backup_integrity_repair_backup_idx
    ON backup_integrity_repair (backup_id, backend, recorded_at DESC);

-- The first timeout of each store in a run (revision 0003_store_deadlines): a store that stops
-- answering is asked for at most store_deadline_seconds from then, by every chunk of the run.
CREATE TABLE IF NOT EXISTS backup_integrity_store_deadline (
    run_id text NOT NULL,
    backend text NOT NULL,
    first_timeout_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, backend)
);

-- A chunk's failures, handed to repair_copies, aggregate_results and raise_alerts through the
-- catalog rather than XCom (revision 0006_bounded_growth); a later run removes them once their
-- run is recorded.
CREATE TABLE IF NOT EXISTS backup_integrity_chunk_failure (
    run_id text NOT NULL,
    label text NOT NULL,
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    result jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, label, backup_id, backend)
);
-- Pruning history older than retention_days finds old runs and repairs by these.
CREATE INDEX IF NOT EXISTS backup_integrity_run_recorded_idx ON backup_integrity_run (recorded_at);
CREATE INDEX IF NOT EXISTS backup_integrity_repair_recorded_idx ON backup_integrity_repair (recorded_at);

-- For the dashboard: failures by day, and the last byte-for-byte read of each copy,
-- without scanning the (much larger) passing history.
CREATE INDEX IF NOT EXISTS backup_integrity_result_failed_idx
    ON backup_integrity_result (checked_at) WHERE kind <> 'passed';
CREATE INDEX IF NOT EXISTS backup_integrity_result_content_idx
    ON backup_integrity_result (backup_id, backend, checked_at DESC) WHERE evidence = 'content_sha256';

-- One row per (restore drill run, backup): how the drill ended and where (revision
-- 0002_restore_drills; the same text as RESTORE_TABLE_DDL in catalog/drills.py).
CREATE TABLE IF NOT EXISTS backup_integrity_restore (
    run_id text NOT NULL,
    backup_id uuid NOT NULL,
    backup_type text NOT NULL,
    format text NOT NULL,
    status text NOT NULL,
    stage text NOT NULL,
    source_backend text NULL,
    message text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    duration_seconds double precision NOT NULL,
    bytes_fetched bigint NULL,
    details jsonb NOT NULL DEFAULT '{}',
    window_end timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, backup_id),
    CONSTRAINT backup_integrity_restore_status_check CHECK (status IN ('passed', 'failed', 'error')),
    CONSTRAINT backup_integrity_restore_stage_check
        CHECK (stage IN ('fetch', 'decrypt', 'decompress', 'restore', 'check'))
);
CREATE INDEX IF NOT EXISTS backup_integrity_restore_backup_idx
    ON backup_integrity_restore (backup_id, finished_at DESC);
CREATE INDEX IF NOT EXISTS backup_integrity_restore_type_idx
    ON backup_integrity_restore (backup_type, status, window_end DESC);

-- One row per configured restore drill run, whether it drilled anything or not (revision
-- 0010_restore_runs; RESTORE_RUN_TABLE_DDL in catalog/drills.py): the earliest window_end
-- starts the clock restore_overdue counts max_age_days in.
CREATE TABLE IF NOT EXISTS backup_integrity_restore_run (
    run_id text PRIMARY KEY,
    window_end timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    statistics jsonb NULL
);

-- What each S3 store was found to offer (learned over runs, see domain/capabilities.py).
CREATE TABLE IF NOT EXISTS backup_integrity_store_capability (
    store text PRIMARY KEY,
    checksum_probes integer NOT NULL DEFAULT 0,   -- objects probed in checksum mode this period
    sha256_answers integer NOT NULL DEFAULT 0,    -- ... that came with a whole-object SHA-256
    rejects_checksum_mode boolean NULL,           -- 400 to x-amz-checksum-mode (NULL: not learned)
    listing_checksums boolean NULL,               -- listings carry checksum fields
    period_started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
