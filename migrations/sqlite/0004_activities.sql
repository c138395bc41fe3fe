-- Marketing activities (content produced by the pipeline), their human
-- edits, the tenants' cloud providers, and usage per day. Jobs gain the
-- activity they run and the route they take (an edge agent or the cloud),
-- and a third kind, `activity`; job events a fourth, `progress`.
-- Mirrors migrations/postgres/0004_activities.sql.
--
-- SQLite cannot change a CHECK constraint in place, so `jobs` and
-- `job_events` are rebuilt: new tables, rows copied, old tables dropped
-- (events first, so no cascade fires), new ones renamed.

CREATE TABLE activities (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id     BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    campaign_id    BLOB REFERENCES campaigns (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('blog_article', 'social_post_set', 'listing_kit')),
    title          TEXT NOT NULL,
    -- The request (protocol ActivityInput), JSON.
    input          TEXT NOT NULL,
    model          TEXT NOT NULL,
    -- The job of the latest run; runs are the jobs with this activity_id.
    current_job_id BLOB NOT NULL,
    runs           BIGINT NOT NULL DEFAULT 1,
    approved_at    TEXT,
    approved_by    BLOB,
    created_by     BLOB,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX activities_project_idx ON activities (tenant_id, project_id, id);
CREATE INDEX activities_tenant_idx ON activities (tenant_id, id);

CREATE TABLE activity_versions (
    id          BLOB PRIMARY KEY,
    activity_id BLOB NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    -- The run whose content this edits.
    job_id      BLOB NOT NULL,
    number      BIGINT NOT NULL,
    content     TEXT NOT NULL,
    author_id   BLOB,
    author_name TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT activity_versions_number_key UNIQUE (activity_id, job_id, number)
);

CREATE TABLE cloud_providers (
    tenant_id   BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url    TEXT NOT NULL,
    model       TEXT NOT NULL,
    -- AES-256-GCM of the API key under the server's data key; the nonce is
    -- unique per encryption. The hint shows the key's last characters.
    api_key_ciphertext BLOB NOT NULL,
    api_key_nonce      BLOB NOT NULL,
    api_key_hint       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE usage_daily (
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day               TEXT NOT NULL,
    jobs              BIGINT NOT NULL DEFAULT 0,
    activities        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    wall_time_ms      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE jobs_new (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL CHECK (kind IN ('chat', 'embed', 'activity')),
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
    CONSTRAINT jobs_idempotency_key UNIQUE (tenant_id, idempotency_key)
);
INSERT INTO jobs_new (id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds,
    queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, attempts, agent_id,
    epoch, lease_expires_at, retry_at, queue_deadline, run_deadline, waiting_reason, agent_seq, event_seq,
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at)
SELECT id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds,
    queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, attempts, agent_id,
    epoch, lease_expires_at, retry_at, queue_deadline, run_deadline, waiting_reason, agent_seq, event_seq,
    output, usage, error, created_at, assigned_at, started_at, finished_at, updated_at
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
