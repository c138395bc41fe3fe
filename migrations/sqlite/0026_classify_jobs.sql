-- A fifth job kind, `classify` (inbox items labelled on an agent, issue
-- 18). As in 0004 and 0005, `jobs` and what refers to it (`job_events`,
-- `sequence_paragraphs`) are rebuilt to change a CHECK.
-- Mirrors migrations/postgres/0026_classify_jobs.sql.

CREATE TABLE jobs_new (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL CHECK (kind IN ('chat', 'embed', 'activity', 'ingest', 'classify')),
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
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at, activity_id, route, index_project_id)
SELECT id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds,
    queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, attempts, agent_id,
    epoch, lease_expires_at, retry_at, queue_deadline, run_deadline, waiting_reason, agent_seq, event_seq,
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at, activity_id, route, index_project_id
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

CREATE TABLE sequence_paragraphs_new (
    enrollment_id BLOB NOT NULL REFERENCES lead_enrollments (id) ON DELETE CASCADE,
    step          BIGINT NOT NULL,
    job_id        BLOB NOT NULL REFERENCES jobs_new (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, step)
);
INSERT INTO sequence_paragraphs_new (enrollment_id, step, job_id, created_at)
SELECT enrollment_id, step, job_id, created_at FROM sequence_paragraphs;

-- What refers to jobs goes first, so dropping jobs cascades to nothing.
DROP TABLE sequence_paragraphs;
DROP TABLE job_events;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE job_events_new RENAME TO job_events;
ALTER TABLE sequence_paragraphs_new RENAME TO sequence_paragraphs;

CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, id);
CREATE INDEX jobs_queue_idx ON jobs (tenant_id, priority, id) WHERE status = 'queued';
CREATE INDEX jobs_active_idx ON jobs (agent_id) WHERE status IN ('assigned', 'running');
CREATE INDEX jobs_activity_idx ON jobs (activity_id, id) WHERE activity_id IS NOT NULL;
CREATE INDEX jobs_cloud_queue_idx ON jobs (priority, id) WHERE status = 'queued' AND route = 'cloud';
CREATE INDEX sequence_paragraphs_job_idx ON sequence_paragraphs (job_id);
