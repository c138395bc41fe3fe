-- Notifications: what happened, for whom, read or not; each person's
-- e-mail preference per kind; the durable e-mail outbox (written in the
-- transaction of the event that causes a message, sent once by one
-- replica); single-use e-mailed links (password reset, e-mail
-- verification); the daily digests already sent. Mirrors
-- migrations/postgres/0010_notifications.sql.
--
-- `kind` has no CHECK: new features add kinds, and SQLite cannot alter a
-- CHECK without rebuilding the table. The code reads it through
-- `NoticeKind` and refuses an unknown one as corrupt.

ALTER TABLE users ADD COLUMN email_verified_at TEXT;

CREATE TABLE notifications (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The organisation it is about; NULL for the person's own account.
    tenant_id   BLOB REFERENCES tenants (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    -- A path in the web UI.
    link        TEXT,
    -- One notification per person per key (an agent's certificate, a
    -- day's expiry warning), whichever replica notices first.
    dedupe_key  TEXT,
    -- Its e-mail: none, queued (in the outbox), digest (waits for the
    -- next daily digest), digested.
    email       TEXT NOT NULL CHECK (email IN ('none', 'queued', 'digest', 'digested')),
    created_at  TEXT NOT NULL,
    read_at     TEXT,
    CONSTRAINT notifications_dedupe_key UNIQUE (user_id, dedupe_key)
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_digest_idx ON notifications (user_id) WHERE email = 'digest';

CREATE TABLE notification_preferences (
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    delivery  TEXT NOT NULL CHECK (delivery IN ('immediately', 'daily_digest', 'off')),
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE email_outbox (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB REFERENCES tenants (id) ON DELETE CASCADE,
    -- The recipient's account, when they have one.
    user_id          BLOB REFERENCES users (id) ON DELETE CASCADE,
    to_address       TEXT NOT NULL,
    purpose          TEXT NOT NULL CHECK (purpose IN ('notification', 'digest', 'invitation', 'password_reset', 'email_verification')),
    notification_id  BLOB REFERENCES notifications (id) ON DELETE SET NULL,
    subject          TEXT NOT NULL,
    -- Plain text; the HTML part is made from it when sending.
    body             TEXT NOT NULL,
    -- A path of the web UI the message points to.
    link             TEXT,
    -- A path carrying a token (reset, verification, invitation), sealed
    -- with the data key; erased once the message is sent.
    secret_link_ciphertext BLOB,
    secret_link_nonce      BLOB,
    -- pending → claimed (a replica holds it, nothing sent yet) → sending
    -- (the message is being handed to the SMTP server) → sent; failed (the
    -- server refused it for good); unknown (the connection broke while the
    -- server had the message: never sent again by itself).
    state            TEXT NOT NULL CHECK (state IN ('pending', 'claimed', 'sending', 'sent', 'failed', 'unknown')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX email_outbox_due_idx ON email_outbox (state, next_attempt_at);
CREATE INDEX email_outbox_tenant_idx ON email_outbox (tenant_id, id);

CREATE TABLE user_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verification', 'unsubscribe')),
    -- The address the link went to: verifying applies to that address only.
    email       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX user_tokens_user_idx ON user_tokens (user_id);

CREATE TABLE digest_runs (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The day in the person's time zone.
    local_date  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, local_date)
);

-- An invitation's e-mailed link carries a token of its own: it reached
-- only the invited mailbox, so (unlike the link shown to the inviter) it
-- may create the invitee's account.
ALTER TABLE invitations ADD COLUMN mail_token_hash BLOB;
CREATE UNIQUE INDEX invitations_mail_token_idx ON invitations (mail_token_hash);
