-- Publishing: the social accounts a tenant connects, the posts scheduled
-- onto them, every attempt to publish one, and the pending OAuth
-- authorisations. Tokens are AES-256-GCM under the server's data key
-- (tenant id as associated data); none is ever returned or logged. Users
-- get a time zone. Mirrors migrations/postgres/0008_publishing.sql.

ALTER TABLE users ADD COLUMN time_zone TEXT;

CREATE TABLE social_accounts (
    id                 BLOB PRIMARY KEY,
    tenant_id          BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform           TEXT NOT NULL CHECK (platform IN ('x', 'linkedin', 'facebook', 'instagram', 'mastodon', 'bluesky')),
    -- The platform's id of the account (user id, DID, page id).
    external_id        TEXT NOT NULL,
    -- The API base URL the account lives on (a Mastodon instance, a
    -- Bluesky PDS); NULL where the platform has one API.
    instance_url       TEXT,
    handle             TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    profile_url        TEXT,
    -- A JSON array of project ids; NULL: every project.
    project_ids        TEXT,
    status             TEXT NOT NULL CHECK (status IN ('connected', 'needs_reconnect')),
    status_reason      TEXT,
    rate_limited_until TEXT,
    rate_limit_note    TEXT,
    access_token_ciphertext  BLOB NOT NULL,
    access_token_nonce       BLOB NOT NULL,
    refresh_token_ciphertext BLOB,
    refresh_token_nonce      BLOB,
    token_expires_at   TEXT,
    -- Bumped by every change of the tokens.
    token_version      BIGINT NOT NULL DEFAULT 1,
    -- One refresh at a time across replicas: the holder and until when.
    refresh_owner      TEXT,
    refresh_until      TEXT,
    -- After a refresh that failed for a passing reason: when to try again.
    refresh_retry_at   TEXT,
    refresh_failures   BIGINT NOT NULL DEFAULT 0,
    last_success_at    TEXT,
    last_checked_at    TEXT,
    next_check_at      TEXT NOT NULL,
    posting_time_zone  TEXT NOT NULL,
    -- JSON: [{"weekday":"mon","time":"09:00"}, ...] in posting_time_zone.
    posting_slots      TEXT NOT NULL DEFAULT '[]',
    created_by         BLOB,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    -- Disconnected accounts keep their published history.
    disconnected_at    TEXT
);
CREATE UNIQUE INDEX social_accounts_identity ON social_accounts (tenant_id, platform, COALESCE(instance_url, ''), external_id);
CREATE INDEX social_accounts_check ON social_accounts (next_check_at) WHERE disconnected_at IS NULL;

CREATE TABLE social_posts (
    id                BLOB PRIMARY KEY,
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id        BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    project_id        BLOB REFERENCES projects (id) ON DELETE SET NULL,
    campaign_id       BLOB,
    activity_id       BLOB,
    activity_version  BIGINT,
    text              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'publishing', 'published', 'failed', 'unconfirmed', 'cancelled', 'deleted')),
    scheduled_at      TEXT,
    time_zone         TEXT NOT NULL,
    approved_by       BLOB,
    approved_at       TEXT,
    -- Waiting (a rate limit, a token refresh, a reconciliation): until when and why.
    not_before        TEXT,
    wait_reason       TEXT,
    lease_owner       TEXT,
    lease_until       TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    -- Bumped only when a publish is proven not to have happened, so the
    -- platform's idempotency key (post id + generation) is stable otherwise.
    generation        BIGINT NOT NULL DEFAULT 1,
    platform_post_id  TEXT,
    platform_url      TEXT,
    published_at      TEXT,
    error             TEXT,
    error_hint        TEXT,
    -- When the first publish request whose outcome is unknown was sent.
    unconfirmed_since TEXT,
    idempotency_key   TEXT,
    created_by        BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX social_posts_idempotency ON social_posts (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX social_posts_calendar ON social_posts (tenant_id, scheduled_at);
CREATE INDEX social_posts_due ON social_posts (scheduled_at) WHERE status IN ('scheduled', 'publishing', 'unconfirmed');

CREATE TABLE social_post_attempts (
    id           BLOB PRIMARY KEY,
    post_id      BLOB NOT NULL REFERENCES social_posts (id) ON DELETE CASCADE,
    tenant_id    BLOB NOT NULL,
    -- publish, reconcile, delete
    kind         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    request_id   TEXT,
    http_status  BIGINT,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX social_post_attempts_post ON social_post_attempts (post_id, started_at);

CREATE TABLE social_oauth_states (
    -- SHA-256 of the state parameter.
    state_hash       TEXT PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          BLOB NOT NULL,
    platform         TEXT NOT NULL,
    instance_url     TEXT,
    verifier_ciphertext BLOB NOT NULL,
    verifier_nonce      BLOB NOT NULL,
    project_ids      TEXT,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL
);

-- Marketer's app registration on each Mastodon instance.
CREATE TABLE mastodon_apps (
    instance_url     TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    secret_nonce      BLOB NOT NULL,
    redirect_uri     TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
