-- Follow-up sequences: the tenant's templates, a lead's run through one,
-- the e-mail each step queued (one per step, ever: the primary key), the
-- addresses no sequence of the tenant mails again, and the tokens of the
-- unsubscribe links in those e-mails.
CREATE TABLE sequences (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- JSON: [{"wait_minutes": 120, "subject": "...", "body": "..."}].
    steps       TEXT NOT NULL,
    -- Started for every consenting lead a listing page brings.
    auto_start  BOOLEAN NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX sequences_name_idx ON sequences (tenant_id, name);

CREATE TABLE lead_enrollments (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lead_id       BLOB NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    sequence_id   BLOB REFERENCES sequences (id) ON DELETE SET NULL,
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
    next_at       TEXT,
    started_by    BLOB REFERENCES users (id) ON DELETE SET NULL,
    started_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX lead_enrollments_due_idx ON lead_enrollments (state, next_at);
CREATE INDEX lead_enrollments_lead_idx ON lead_enrollments (lead_id);
CREATE UNIQUE INDEX lead_enrollments_running_idx ON lead_enrollments (lead_id, sequence_id) WHERE state = 'active';

CREATE TABLE sequence_sends (
    enrollment_id BLOB NOT NULL REFERENCES lead_enrollments (id) ON DELETE CASCADE,
    step          BIGINT NOT NULL,
    -- The message in email_outbox.
    mail_id       BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, step)
);

CREATE TABLE marketing_suppressions (
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_normalized TEXT NOT NULL,
    reason           TEXT NOT NULL CHECK (reason IN ('unsubscribed', 'bounced')),
    created_at       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, email_normalized)
);

-- Unsubscribe links do not expire (the law wants them working for at
-- least 30 days after sending; nobody should find a dead one).
CREATE TABLE unsubscribe_tokens (
    token_hash       BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lead_id          BLOB NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    created_at       TEXT NOT NULL
);

-- Marketing e-mail (a sequence's steps) goes through the one outbox; a
-- step drafted for review waits there as 'draft' until a person sends or
-- skips it. SQLite cannot change a CHECK constraint: the table is rebuilt
-- (nothing references it).
CREATE TABLE email_outbox_new (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          BLOB REFERENCES users (id) ON DELETE CASCADE,
    to_address       TEXT NOT NULL,
    purpose          TEXT NOT NULL CHECK (purpose IN ('notification', 'digest', 'invitation', 'password_reset', 'email_verification', 'marketing')),
    notification_id  BLOB REFERENCES notifications (id) ON DELETE SET NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    link             TEXT,
    secret_link_ciphertext BLOB,
    secret_link_nonce      BLOB,
    state            TEXT NOT NULL CHECK (state IN ('draft', 'pending', 'claimed', 'sending', 'sent', 'failed', 'unknown')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
INSERT INTO email_outbox_new SELECT id, tenant_id, user_id, to_address, purpose, notification_id, subject, body,
    link, secret_link_ciphertext, secret_link_nonce, state, attempts, next_attempt_at, lease_owner,
    lease_expires_at, last_error, created_at, sent_at FROM email_outbox;
DROP TABLE email_outbox;
ALTER TABLE email_outbox_new RENAME TO email_outbox;
CREATE INDEX email_outbox_due_idx ON email_outbox (state, next_attempt_at);
CREATE INDEX email_outbox_tenant_idx ON email_outbox (tenant_id, id);

-- Lead scoring fitted to the tenant's own won and lost leads: the six
-- weights (JSON array, the signals' order) and how the fit went (JSON);
-- NULL: the default weights.
ALTER TABLE real_estate_settings ADD COLUMN score_weights TEXT;
ALTER TABLE real_estate_settings ADD COLUMN score_fit TEXT;
