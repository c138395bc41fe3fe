-- Suggested replies to inbox items (issue 18): a sixth job kind, `reply`
-- (an agent drafts one item's answer, grounded in the project's
-- documents); the draft on the item, with the documents it cites or why
-- it cites none; the job it waits for, failed jobs and when to try
-- again (three at most); reply_requested when a person asked for a draft
-- of an item the rules would not draft; the post that answered it (sent
-- through the publishing engine, reply_to the platform's id of the item);
-- auto_reply_checked once the auto-reply rules have looked at its draft.
-- inbox_settings: per tenant, whether replies are drafted on their own,
-- and the intents answered without a person (none by default), with who
-- set them.
--
-- As in 0026, `jobs` and what refers to it are rebuilt to change a CHECK.
-- Mirrors migrations/postgres/0027_inbox_replies.sql.

CREATE TABLE jobs_new (
    id                    BLOB PRIMARY KEY,
    tenant_id             BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL CHECK (kind IN ('chat', 'embed', 'activity', 'ingest', 'classify', 'reply')),
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

ALTER TABLE inbox_items ADD COLUMN reply_draft TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_sources TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_ungrounded TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_drafted_at TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_job_id BLOB;
ALTER TABLE inbox_items ADD COLUMN reply_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbox_items ADD COLUMN reply_retry_at TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_error TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE inbox_items ADD COLUMN reply_post_id BLOB REFERENCES social_posts (id) ON DELETE SET NULL;
ALTER TABLE inbox_items ADD COLUMN auto_reply_checked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE social_posts ADD COLUMN reply_to TEXT;

CREATE TABLE inbox_settings (
    tenant_id          BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    draft_replies      BOOLEAN NOT NULL DEFAULT TRUE,
    -- Comma-separated intents, from question, praise, purchase_interest.
    auto_reply_intents TEXT NOT NULL DEFAULT '',
    -- Crisis alerts: at least this many negative items in an hour, and a
    -- z-score against the same hour of the last eight weeks at least
    -- crisis_z_hundredths / 100.
    crisis_min_count   BIGINT NOT NULL DEFAULT 5,
    crisis_z_hundredths BIGINT NOT NULL DEFAULT 300,
    updated_by         BLOB REFERENCES users (id) ON DELETE SET NULL,
    updated_at         TEXT NOT NULL
);

-- Classified items without a draft, a job or a reply, oldest first.
CREATE INDEX inbox_items_undrafted_idx ON inbox_items (classified_at)
    WHERE reply_draft IS NULL AND reply_job_id IS NULL AND reply_post_id IS NULL AND classified_at IS NOT NULL;
CREATE INDEX inbox_items_reply_job_idx ON inbox_items (reply_job_id) WHERE reply_job_id IS NOT NULL;
-- Drafts the auto-reply rules have not looked at.
CREATE INDEX inbox_items_auto_reply_idx ON inbox_items (reply_drafted_at)
    WHERE reply_draft IS NOT NULL AND auto_reply_checked = FALSE;

-- Crisis alerts: one per episode of negative volume far above its
-- baseline, per account (its mentions and replies) or listening query
-- (scope: 'account:<id>' or 'query:<id>'); at most one open per scope.
-- The numbers are the window's when it opened and its peak since; the
-- items that caused it are kept as a JSON array of ids.
CREATE TABLE crisis_alerts (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id     BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    query_id       BLOB REFERENCES listening_queries (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    opened_at      TEXT NOT NULL,
    closed_at      TEXT,
    negatives      BIGINT NOT NULL,
    total          BIGINT NOT NULL,
    peak           BIGINT NOT NULL,
    -- Hundredths: the baseline's mean and standard deviation, the z-score.
    baseline_mean  BIGINT NOT NULL,
    baseline_sd    BIGINT NOT NULL,
    z              BIGINT NOT NULL,
    item_ids       TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX crisis_alerts_open_idx ON crisis_alerts (scope) WHERE closed_at IS NULL;
CREATE INDEX crisis_alerts_tenant_idx ON crisis_alerts (tenant_id, opened_at);
-- Counting an account's items in a window.
CREATE INDEX inbox_items_account_time_idx ON inbox_items (account_id, posted_at);
