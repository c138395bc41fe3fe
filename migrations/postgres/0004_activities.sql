-- Marketing activities (content produced by the pipeline), their human
-- edits, the tenants' cloud providers, and usage per day. Jobs gain the
-- activity they run and the route they take (an edge agent or the cloud),
-- and a third kind, `activity`; job events a fourth, `progress`.
-- Mirrors migrations/sqlite/0004_activities.sql.

CREATE TABLE activities (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id     UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    campaign_id    UUID REFERENCES campaigns (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('blog_article', 'social_post_set', 'listing_kit')),
    title          TEXT NOT NULL,
    -- The request (protocol ActivityInput), JSON.
    input          TEXT NOT NULL,
    model          TEXT NOT NULL,
    -- The job of the latest run; runs are the jobs with this activity_id.
    current_job_id UUID NOT NULL,
    runs           BIGINT NOT NULL DEFAULT 1,
    approved_at    TIMESTAMPTZ,
    approved_by    UUID,
    created_by     UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX activities_project_idx ON activities (tenant_id, project_id, id);
CREATE INDEX activities_tenant_idx ON activities (tenant_id, id);

CREATE TABLE activity_versions (
    id          UUID PRIMARY KEY,
    activity_id UUID NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    -- The run whose content this edits.
    job_id      UUID NOT NULL,
    number      BIGINT NOT NULL,
    content     TEXT NOT NULL,
    author_id   UUID,
    author_name TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT activity_versions_number_key UNIQUE (activity_id, job_id, number)
);

CREATE TABLE cloud_providers (
    tenant_id   UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url    TEXT NOT NULL,
    model       TEXT NOT NULL,
    -- AES-256-GCM of the API key under the server's data key; the nonce is
    -- unique per encryption. The hint shows the key's last characters.
    api_key_ciphertext BYTEA NOT NULL,
    api_key_nonce      BYTEA NOT NULL,
    api_key_hint       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE usage_daily (
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day               TEXT NOT NULL,
    jobs              BIGINT NOT NULL DEFAULT 0,
    activities        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    wall_time_ms      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('chat', 'embed', 'activity'));
-- The activity this job is a run of, if any.
ALTER TABLE jobs ADD COLUMN activity_id UUID REFERENCES activities (id) ON DELETE CASCADE;
-- Who runs it: the tenant's edge agents, or the control plane's cloud runner
-- (only for cloud_allowed projects).
ALTER TABLE jobs ADD COLUMN route TEXT NOT NULL DEFAULT 'edge' CHECK (route IN ('edge', 'cloud'));
ALTER TABLE job_events DROP CONSTRAINT job_events_kind_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_kind_check CHECK (kind IN ('status', 'chunk', 'progress', 'done'));

CREATE INDEX jobs_activity_idx ON jobs (activity_id, id) WHERE activity_id IS NOT NULL;
CREATE INDEX jobs_cloud_queue_idx ON jobs (priority, id) WHERE status = 'queued' AND route = 'cloud';
