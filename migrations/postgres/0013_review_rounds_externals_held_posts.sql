-- Issue 15, second part. Mirrors migrations/sqlite/0013_review_rounds_externals_held_posts.sql.
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

ALTER TABLE review_workflows ADD COLUMN expire_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE review_steps ADD COLUMN externals TEXT NOT NULL DEFAULT '[]';
ALTER TABLE review_steps ADD COLUMN only_with_findings BOOLEAN NOT NULL DEFAULT FALSE;
-- A comment by an external reviewer, through their link (author_id NULL).
ALTER TABLE comments ADD COLUMN author_email TEXT;

ALTER TABLE review_decisions ADD COLUMN round BIGINT NOT NULL DEFAULT 0;
ALTER TABLE review_decisions ADD COLUMN reviewer_email TEXT;
ALTER TABLE review_decisions ALTER COLUMN activity_id DROP NOT NULL;
ALTER TABLE review_decisions ADD COLUMN post_id UUID REFERENCES social_posts (id) ON DELETE CASCADE;
ALTER TABLE review_decisions ADD CONSTRAINT review_decisions_item_check
    CHECK ((activity_id IS NULL) <> (post_id IS NULL));
CREATE UNIQUE INDEX review_decisions_post_once
    ON review_decisions (post_id, version, round, step, user_id) WHERE post_id IS NOT NULL;
ALTER TABLE review_decisions DROP CONSTRAINT review_decisions_decision_check;
ALTER TABLE review_decisions ADD CONSTRAINT review_decisions_decision_check
    CHECK (decision IN ('approve', 'request_changes', 'reject', 'restart'));
ALTER TABLE review_decisions DROP CONSTRAINT review_decisions_once;
ALTER TABLE review_decisions ADD CONSTRAINT review_decisions_once
    UNIQUE (activity_id, content_run_id, version, round, step, user_id);
CREATE UNIQUE INDEX review_decisions_external_once
    ON review_decisions (activity_id, content_run_id, version, round, step, reviewer_email)
    WHERE reviewer_email IS NOT NULL;

-- A link for one external reviewer and one activity; the token is kept
-- only as its SHA-256.
CREATE TABLE review_links (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    activity_id  UUID NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX review_links_activity_idx ON review_links (tenant_id, activity_id);

ALTER TABLE social_posts DROP CONSTRAINT social_posts_status_check;
ALTER TABLE social_posts ADD CONSTRAINT social_posts_status_check
    CHECK (status IN ('draft', 'scheduled', 'needs_reschedule', 'publishing', 'published', 'failed', 'unconfirmed', 'cancelled', 'deleted'));
ALTER TABLE social_posts ADD COLUMN edited_at TIMESTAMPTZ;
ALTER TABLE social_posts ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
