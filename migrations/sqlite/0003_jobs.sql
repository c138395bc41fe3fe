-- LLM jobs: the queue, their leases, and the event log that streams to
-- clients (SSE) and survives restarts.
-- Mirrors migrations/postgres/0003_jobs.sql with the SQLite types of 0001.

CREATE TABLE jobs (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL CHECK (kind IN ('chat', 'embed')),
    model                 TEXT NOT NULL,
    -- The job as sent to agents (protocol JobSpec), JSON.
    spec                  TEXT NOT NULL,
    labels                TEXT NOT NULL,
    priority              BIGINT NOT NULL CHECK (priority BETWEEN 1 AND 5),
    not_before            TEXT,
    timeout_seconds       BIGINT NOT NULL,
    queue_timeout_seconds BIGINT,
    max_attempts          BIGINT NOT NULL,
    idempotency_key       TEXT,
    request_hash          BLOB NOT NULL,
    created_by            TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts              BIGINT NOT NULL DEFAULT 0,
    agent_id              BLOB,
    -- The fencing number of the current lease; bumped by every assignment,
    -- cancellation and requeue, so late events of an old lease are discarded.
    epoch                 BIGINT NOT NULL DEFAULT 0,
    lease_expires_at      TEXT,
    retry_at              TEXT,
    -- When a queued job gives up waiting, and when a started attempt times out.
    queue_deadline        TEXT,
    run_deadline          TEXT,
    waiting_reason        TEXT,
    -- The last agent event sequence number stored for the current epoch.
    agent_seq             BIGINT NOT NULL DEFAULT 0,
    -- The id of the job's last stored event (its SSE id).
    event_seq             BIGINT NOT NULL DEFAULT 0,
    output                TEXT,
    usage                 TEXT,
    error                 TEXT,
    created_at            TEXT NOT NULL,
    assigned_at           TEXT,
    started_at            TEXT,
    finished_at           TEXT,
    updated_at            TEXT NOT NULL,
    CONSTRAINT jobs_idempotency_key UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, id);
CREATE INDEX jobs_queue_idx ON jobs (tenant_id, priority, id) WHERE status = 'queued';
CREATE INDEX jobs_active_idx ON jobs (agent_id) WHERE status IN ('assigned', 'running');

CREATE TABLE job_events (
    job_id      BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('status', 'chunk', 'done')),
    attempt     BIGINT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
