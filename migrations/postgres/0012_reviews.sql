-- Review workflows: a tenant's ordered review steps (who approves each,
-- and whether any one of them or all must), the workflow each project
-- uses, and every reviewer's decision on an activity's content version.
-- Mirrors migrations/sqlite/0012_reviews.sql.
--
-- Where an activity stands is derived from the decisions on its current
-- version: a new version (an edit, a regeneration) has none, so review
-- starts again at the first step.

CREATE TABLE review_workflows (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    name_normalized  TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT review_workflows_name_key UNIQUE (tenant_id, name_normalized)
);

CREATE TABLE review_steps (
    workflow_id  UUID NOT NULL REFERENCES review_workflows (id) ON DELETE CASCADE,
    -- 1, 2, 3 ...
    position     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    -- any: one approval completes the step; all: every approver's.
    rule         TEXT NOT NULL CHECK (rule IN ('any', 'all')),
    -- The approvers: these members, or else every member with this role
    -- or above.
    min_role     TEXT CHECK (min_role IN ('viewer', 'member', 'admin', 'owner')),
    members      TEXT NOT NULL,
    PRIMARY KEY (workflow_id, position)
);

CREATE TABLE project_review_workflows (
    project_id   UUID PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    workflow_id  UUID NOT NULL REFERENCES review_workflows (id) ON DELETE CASCADE
);

CREATE TABLE review_decisions (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    activity_id     UUID NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    -- The content version decided on: the run and the version's number.
    content_run_id  UUID NOT NULL,
    version         BIGINT NOT NULL,
    -- The workflow and step it was taken at (0 and 1 for the default).
    workflow_id     UUID,
    step            BIGINT NOT NULL,
    user_id         UUID REFERENCES users (id) ON DELETE SET NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'request_changes', 'reject')),
    comment         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT review_decisions_once UNIQUE (activity_id, content_run_id, version, step, user_id)
);
CREATE INDEX review_decisions_activity_idx ON review_decisions (activity_id, content_run_id, version);
