-- Documents: metadata of the files that ground a project's content. The
-- files' text, chunks and vectors live in the index on the edge agent that
-- holds them; uploads (cloud_allowed projects only) keep the file in the
-- control plane's storage until it is deleted. Agents report the policy
-- they apply and the projects whose index they hold; jobs may be bound to
-- the agents that hold a project's index; a fourth job kind, `ingest`.
-- Mirrors migrations/postgres/0005_documents.sql.
--
-- As in 0004, `jobs` and `job_events` are rebuilt to change a CHECK.

CREATE TABLE documents (
    id              BLOB PRIMARY KEY,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id      BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    -- `upload` (through the API) or `edge` (ingested on the agent host).
    origin          TEXT NOT NULL CHECK (origin IN ('upload', 'edge')),
    -- Where an upload's file is kept (the storage's key); NULL for edge.
    storage_key     TEXT,
    -- The agent whose index holds it.
    agent_id        BLOB REFERENCES agents (id) ON DELETE SET NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
    error           TEXT,
    chunk_count     BIGINT NOT NULL DEFAULT 0,
    embedding_model TEXT,
    indexed_at      TEXT,
    -- An upload's ingest job.
    job_id          BLOB,
    -- Deleted by a person; kept until the agent that holds it confirms.
    deleted_at      TEXT,
    created_by      BLOB,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX documents_project_idx ON documents (tenant_id, project_id, id);
CREATE INDEX documents_agent_idx ON documents (agent_id) WHERE agent_id IS NOT NULL;

-- The agent's privacy policy as it applies it (JSON), and the projects whose
-- index it holds (a JSON array of ids).
ALTER TABLE agents ADD COLUMN policy TEXT;
ALTER TABLE agents ADD COLUMN projects TEXT NOT NULL DEFAULT '[]';

CREATE TABLE jobs_new (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL CHECK (kind IN ('chat', 'embed', 'activity', 'ingest')),
    model                 TEXT NOT NULL,
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
    epoch                 BIGINT NOT NULL DEFAULT 0,
    lease_expires_at      TEXT,
    retry_at              TEXT,
    queue_deadline        TEXT,
    run_deadline          TEXT,
    waiting_reason        TEXT,
    agent_seq             BIGINT NOT NULL DEFAULT 0,
    event_seq             BIGINT NOT NULL DEFAULT 0,
    output                TEXT,
    usage                 TEXT,
    error                 TEXT,
    created_at            TEXT NOT NULL,
    assigned_at           TEXT,
    started_at            TEXT,
    finished_at           TEXT,
    updated_at            TEXT NOT NULL,
    -- The activity this job is a run of, if any.
    activity_id           BLOB REFERENCES activities (id) ON DELETE CASCADE,
    -- Who runs it: the tenant's edge agents, or the control plane's cloud
    -- runner (only for cloud_allowed projects).
    route                 TEXT NOT NULL DEFAULT 'edge' CHECK (route IN ('edge', 'cloud')),
    -- Only an agent holding this project's document index may run the job.
    index_project_id      BLOB,
    CONSTRAINT jobs_idempotency_key UNIQUE (tenant_id, idempotency_key)
);
INSERT INTO jobs_new (id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds,
    queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, attempts, agent_id,
    epoch, lease_expires_at, retry_at, queue_deadline, run_deadline, waiting_reason, agent_seq, event_seq,
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at, activity_id, route)
SELECT id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds,
    queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, attempts, agent_id,
    epoch, lease_expires_at, retry_at, queue_deadline, run_deadline, waiting_reason, agent_seq, event_seq,
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at, activity_id, route
FROM jobs;

CREATE TABLE job_events_new (
    job_id      BLOB NOT NULL REFERENCES jobs_new (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('status', 'chunk', 'progress', 'done')),
    attempt     BIGINT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO job_events_new (job_id, seq, kind, attempt, data, created_at)
SELECT job_id, seq, kind, attempt, data, created_at FROM job_events;

DROP TABLE job_events;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE job_events_new RENAME TO job_events;

CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, id);
CREATE INDEX jobs_queue_idx ON jobs (tenant_id, priority, id) WHERE status = 'queued';
CREATE INDEX jobs_active_idx ON jobs (agent_id) WHERE status IN ('assigned', 'running');
CREATE INDEX jobs_activity_idx ON jobs (activity_id, id) WHERE activity_id IS NOT NULL;
CREATE INDEX jobs_cloud_queue_idx ON jobs (priority, id) WHERE status = 'queued' AND route = 'cloud';
