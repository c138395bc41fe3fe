-- no-transaction
-- Issue 15, second part. Mirrors migrations/postgres/0013_review_rounds_externals_held_posts.sql.
--
-- - A workflow's pending reviews expire after `expire_days`; restarting an
--   expired review starts a new round (decisions of earlier rounds are
--   history, not votes).
-- - A step may name external reviewers by e-mail (they decide through a
--   link, review_links) and may apply only to content with Fair Housing
--   findings.
-- - A post whose approval is not complete at its scheduled time is held
--   (`needs_reschedule`), never published unapproved; a post whose text or
--   image was edited (`edited_at`) is no longer covered by its activity's
--   approval and needs its own: its own review, whose decisions name the
--   post (`post_id`) and its `revision` (bumped by every edit).
--
-- SQLite cannot change a CHECK constraint in place, so review_decisions and
-- social_posts are rebuilt (SQLite's documented twelve-step procedure).
-- Foreign keys are off during the rebuild, or dropping the old
-- social_posts would cascade to its attempts and comments; the rebuild is
-- one transaction.

PRAGMA foreign_keys = OFF;
BEGIN;

ALTER TABLE review_workflows ADD COLUMN expire_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE review_steps ADD COLUMN externals TEXT NOT NULL DEFAULT '[]';
ALTER TABLE review_steps ADD COLUMN only_with_findings BOOLEAN NOT NULL DEFAULT FALSE;
-- A comment by an external reviewer, through their link (author_id NULL).
ALTER TABLE comments ADD COLUMN author_email TEXT;

CREATE TABLE review_decisions_new (
    id              BLOB PRIMARY KEY,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- What is reviewed: an activity's content version, or a post's
    -- revision (content_run_id is then the post's id).
    activity_id     BLOB REFERENCES activities (id) ON DELETE CASCADE,
    post_id         BLOB REFERENCES social_posts (id) ON DELETE CASCADE,
    content_run_id  BLOB NOT NULL,
    version         BIGINT NOT NULL,
    -- 0, then one more at every restart of an expired review.
    round           BIGINT NOT NULL DEFAULT 0,
    workflow_id     BLOB,
    -- The step (0 for a restart).
    step            BIGINT NOT NULL,
    user_id         BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- An external reviewer's address (user_id is then NULL).
    reviewer_email  TEXT,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'request_changes', 'reject', 'restart')),
    comment         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    CONSTRAINT review_decisions_once UNIQUE (activity_id, content_run_id, version, round, step, user_id),
    CHECK ((activity_id IS NULL) <> (post_id IS NULL))
);
INSERT INTO review_decisions_new (id, tenant_id, activity_id, content_run_id, version, round, workflow_id, step,
    user_id, reviewer_email, decision, comment, created_at)
SELECT id, tenant_id, activity_id, content_run_id, version, 0, workflow_id, step, user_id, NULL, decision, comment,
    created_at FROM review_decisions;
DROP TABLE review_decisions;
ALTER TABLE review_decisions_new RENAME TO review_decisions;
CREATE INDEX review_decisions_activity_idx ON review_decisions (activity_id, content_run_id, version);
CREATE UNIQUE INDEX review_decisions_post_once
    ON review_decisions (post_id, version, round, step, user_id) WHERE post_id IS NOT NULL;
CREATE UNIQUE INDEX review_decisions_external_once
    ON review_decisions (activity_id, content_run_id, version, round, step, reviewer_email)
    WHERE reviewer_email IS NOT NULL;

-- A link for one external reviewer and one activity; the token is kept
-- only as its SHA-256.
CREATE TABLE review_links (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    activity_id  BLOB NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    expires_at   TEXT NOT NULL,
    created_by   BLOB,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX review_links_activity_idx ON review_links (tenant_id, activity_id);

CREATE TABLE social_posts_new (
    id                BLOB PRIMARY KEY,
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id        BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    project_id        BLOB REFERENCES projects (id) ON DELETE SET NULL,
    campaign_id       BLOB,
    activity_id       BLOB,
    activity_version  BIGINT,
    text              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'needs_reschedule', 'publishing', 'published', 'failed', 'unconfirmed', 'cancelled', 'deleted')),
    scheduled_at      TEXT,
    time_zone         TEXT NOT NULL,
    approved_by       BLOB,
    approved_at       TEXT,
    not_before        TEXT,
    wait_reason       TEXT,
    lease_owner       TEXT,
    lease_until       TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    generation        BIGINT NOT NULL DEFAULT 1,
    platform_post_id  TEXT,
    platform_url      TEXT,
    published_at      TEXT,
    error             TEXT,
    error_hint        TEXT,
    unconfirmed_since TEXT,
    idempotency_key   TEXT,
    created_by        BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    image_url         TEXT,
    platform_container_id TEXT,
    edited_at         TEXT,
    revision          BIGINT NOT NULL DEFAULT 0
);
INSERT INTO social_posts_new (id, tenant_id, account_id, project_id, campaign_id, activity_id, activity_version,
    text, status, scheduled_at, time_zone, approved_by, approved_at, not_before, wait_reason, lease_owner,
    lease_until, attempts, generation, platform_post_id, platform_url, published_at, error, error_hint,
    unconfirmed_since, idempotency_key, created_by, created_at, updated_at, image_url, platform_container_id)
SELECT id, tenant_id, account_id, project_id, campaign_id, activity_id, activity_version,
    text, status, scheduled_at, time_zone, approved_by, approved_at, not_before, wait_reason, lease_owner,
    lease_until, attempts, generation, platform_post_id, platform_url, published_at, error, error_hint,
    unconfirmed_since, idempotency_key, created_by, created_at, updated_at, image_url, platform_container_id
FROM social_posts;
DROP TABLE social_posts;
ALTER TABLE social_posts_new RENAME TO social_posts;
CREATE UNIQUE INDEX social_posts_idempotency ON social_posts (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX social_posts_calendar ON social_posts (tenant_id, scheduled_at);
CREATE INDEX social_posts_due ON social_posts (scheduled_at) WHERE status IN ('scheduled', 'publishing', 'unconfirmed');

COMMIT;
PRAGMA foreign_keys = ON;
