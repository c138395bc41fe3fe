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
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('chat', 'embed', 'activity', 'ingest', 'classify', 'reply'));
ALTER TABLE inbox_items ADD COLUMN reply_draft TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_sources TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_ungrounded TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_drafted_at TIMESTAMPTZ;
ALTER TABLE inbox_items ADD COLUMN reply_job_id UUID;
ALTER TABLE inbox_items ADD COLUMN reply_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbox_items ADD COLUMN reply_retry_at TIMESTAMPTZ;
ALTER TABLE inbox_items ADD COLUMN reply_error TEXT;
ALTER TABLE inbox_items ADD COLUMN reply_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE inbox_items ADD COLUMN reply_post_id UUID REFERENCES social_posts (id) ON DELETE SET NULL;
ALTER TABLE inbox_items ADD COLUMN auto_reply_checked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE social_posts ADD COLUMN reply_to TEXT;

CREATE TABLE inbox_settings (
    tenant_id          UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    draft_replies      BOOLEAN NOT NULL DEFAULT TRUE,
    -- Comma-separated intents, from question, praise, purchase_interest.
    auto_reply_intents TEXT NOT NULL DEFAULT '',
    -- Crisis alerts: at least this many negative items in an hour, and a
    -- z-score against the same hour of the last eight weeks at least
    -- crisis_z_hundredths / 100.
    crisis_min_count   BIGINT NOT NULL DEFAULT 5,
    crisis_z_hundredths BIGINT NOT NULL DEFAULT 300,
    updated_by         UUID REFERENCES users (id) ON DELETE SET NULL,
    updated_at         TIMESTAMPTZ NOT NULL
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
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id     UUID NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    query_id       UUID REFERENCES listening_queries (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    opened_at      TIMESTAMPTZ NOT NULL,
    closed_at      TIMESTAMPTZ,
    negatives      BIGINT NOT NULL,
    total          BIGINT NOT NULL,
    peak           BIGINT NOT NULL,
    -- Hundredths: the baseline's mean and standard deviation, the z-score.
    baseline_mean  BIGINT NOT NULL,
    baseline_sd    BIGINT NOT NULL,
    z              BIGINT NOT NULL,
    item_ids       TEXT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX crisis_alerts_open_idx ON crisis_alerts (scope) WHERE closed_at IS NULL;
CREATE INDEX crisis_alerts_tenant_idx ON crisis_alerts (tenant_id, opened_at);
-- Counting an account's items in a window.
CREATE INDEX inbox_items_account_time_idx ON inbox_items (account_id, posted_at);
