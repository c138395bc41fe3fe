-- Follow-up sequences: the tenant's templates, a lead's run through one,
-- the e-mail each step queued (one per step, ever: the primary key), the
-- addresses no sequence of the tenant mails again, and the tokens of the
-- unsubscribe links in those e-mails.
CREATE TABLE sequences (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- JSON: [{"wait_minutes": 120, "subject": "...", "body": "..."}].
    steps       TEXT NOT NULL,
    -- Started for every consenting lead a listing page brings.
    auto_start  BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX sequences_name_idx ON sequences (tenant_id, name);

CREATE TABLE lead_enrollments (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lead_id       UUID NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    sequence_id   UUID REFERENCES sequences (id) ON DELETE SET NULL,
    sequence_name TEXT NOT NULL,
    -- The steps as they were at the start: editing the template does not
    -- change a sequence already running.
    steps         TEXT NOT NULL,
    -- active → finished (every step queued) | stopped (a reply, won, lost,
    -- unsubscribed, by hand).
    state         TEXT NOT NULL CHECK (state IN ('active', 'finished', 'stopped')),
    stop_reason   TEXT,
    -- The step to queue next (0-based), and when; NULL once not active.
    next_step     BIGINT NOT NULL,
    next_at       TIMESTAMPTZ,
    started_by    UUID REFERENCES users (id) ON DELETE SET NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX lead_enrollments_due_idx ON lead_enrollments (state, next_at);
CREATE INDEX lead_enrollments_lead_idx ON lead_enrollments (lead_id);
CREATE UNIQUE INDEX lead_enrollments_running_idx ON lead_enrollments (lead_id, sequence_id) WHERE state = 'active';

CREATE TABLE sequence_sends (
    enrollment_id UUID NOT NULL REFERENCES lead_enrollments (id) ON DELETE CASCADE,
    step          BIGINT NOT NULL,
    -- The message in email_outbox.
    mail_id       UUID NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (enrollment_id, step)
);

CREATE TABLE marketing_suppressions (
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_normalized TEXT NOT NULL,
    reason           TEXT NOT NULL CHECK (reason IN ('unsubscribed', 'bounced')),
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, email_normalized)
);

-- Unsubscribe links do not expire (the law wants them working for at
-- least 30 days after sending; nobody should find a dead one).
CREATE TABLE unsubscribe_tokens (
    token_hash       BYTEA PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lead_id          UUID NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    created_at       TIMESTAMPTZ NOT NULL
);

-- Marketing e-mail (a sequence's steps) goes through the one outbox; a
-- step drafted for review waits there as 'draft' until a person sends or
-- skips it.
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_purpose_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_purpose_check
    CHECK (purpose IN ('notification', 'digest', 'invitation', 'password_reset', 'email_verification', 'marketing'));
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_state_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_state_check
    CHECK (state IN ('draft', 'pending', 'claimed', 'sending', 'sent', 'failed', 'unknown'));

-- Lead scoring fitted to the tenant's own won and lost leads: the six
-- weights (JSON array, the signals' order) and how the fit went (JSON);
-- NULL: the default weights.
ALTER TABLE real_estate_settings ADD COLUMN score_weights TEXT;
ALTER TABLE real_estate_settings ADD COLUMN score_fit TEXT;
