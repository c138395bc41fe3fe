-- Publishing: the social accounts a tenant connects, the posts scheduled
-- onto them, every attempt to publish one, and the pending OAuth
-- authorisations. Tokens are AES-256-GCM under the server's data key
-- (tenant id as associated data); none is ever returned or logged. Users
-- get a time zone. Mirrors migrations/sqlite/0008_publishing.sql.

ALTER TABLE users ADD COLUMN time_zone TEXT;

CREATE TABLE social_accounts (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
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
    rate_limited_until TIMESTAMPTZ,
    rate_limit_note    TEXT,
    access_token_ciphertext  BYTEA NOT NULL,
    access_token_nonce       BYTEA NOT NULL,
    refresh_token_ciphertext BYTEA,
    refresh_token_nonce      BYTEA,
    token_expires_at   TIMESTAMPTZ,
    -- Bumped by every change of the tokens.
    token_version      BIGINT NOT NULL DEFAULT 1,
    -- One refresh at a time across replicas: the holder and until when.
    refresh_owner      TEXT,
    refresh_until      TIMESTAMPTZ,
    -- After a refresh that failed for a passing reason: when to try again.
    refresh_retry_at   TIMESTAMPTZ,
    refresh_failures   BIGINT NOT NULL DEFAULT 0,
    last_success_at    TIMESTAMPTZ,
    last_checked_at    TIMESTAMPTZ,
    next_check_at      TIMESTAMPTZ NOT NULL,
    posting_time_zone  TEXT NOT NULL,
    -- JSON: [{"weekday":"mon","time":"09:00"}, ...] in posting_time_zone.
    posting_slots      TEXT NOT NULL DEFAULT '[]',
    created_by         UUID,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    -- Disconnected accounts keep their published history.
    disconnected_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX social_accounts_identity ON social_accounts (tenant_id, platform, COALESCE(instance_url, ''), external_id);
CREATE INDEX social_accounts_check ON social_accounts (next_check_at) WHERE disconnected_at IS NULL;

CREATE TABLE social_posts (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id        UUID NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    project_id        UUID REFERENCES projects (id) ON DELETE SET NULL,
    campaign_id       UUID,
    activity_id       UUID,
    activity_version  BIGINT,
    text              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'publishing', 'published', 'failed', 'unconfirmed', 'cancelled', 'deleted')),
    scheduled_at      TIMESTAMPTZ,
    time_zone         TEXT NOT NULL,
    approved_by       UUID,
    approved_at       TIMESTAMPTZ,
    -- Waiting (a rate limit, a token refresh, a reconciliation): until when and why.
    not_before        TIMESTAMPTZ,
    wait_reason       TEXT,
    lease_owner       TEXT,
    lease_until       TIMESTAMPTZ,
    attempts          BIGINT NOT NULL DEFAULT 0,
    -- Bumped only when a publish is proven not to have happened, so the
    -- platform's idempotency key (post id + generation) is stable otherwise.
    generation        BIGINT NOT NULL DEFAULT 1,
    platform_post_id  TEXT,
    platform_url      TEXT,
    published_at      TIMESTAMPTZ,
    error             TEXT,
    error_hint        TEXT,
    -- When the first publish request whose outcome is unknown was sent.
    unconfirmed_since TIMESTAMPTZ,
    idempotency_key   TEXT,
    created_by        UUID,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX social_posts_idempotency ON social_posts (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX social_posts_calendar ON social_posts (tenant_id, scheduled_at);
CREATE INDEX social_posts_due ON social_posts (scheduled_at) WHERE status IN ('scheduled', 'publishing', 'unconfirmed');

CREATE TABLE social_post_attempts (
    id           UUID PRIMARY KEY,
    post_id      UUID NOT NULL REFERENCES social_posts (id) ON DELETE CASCADE,
    tenant_id    UUID NOT NULL,
    -- publish, reconcile, delete
    kind         TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    request_id   TEXT,
    http_status  BIGINT,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX social_post_attempts_post ON social_post_attempts (post_id, started_at);

CREATE TABLE social_oauth_states (
    -- SHA-256 of the state parameter.
    state_hash       TEXT PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id          UUID NOT NULL,
    platform         TEXT NOT NULL,
    instance_url     TEXT,
    verifier_ciphertext BYTEA NOT NULL,
    verifier_nonce      BYTEA NOT NULL,
    project_ids      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL
);

-- Marketer's app registration on each Mastodon instance.
CREATE TABLE mastodon_apps (
    instance_url     TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce      BYTEA NOT NULL,
    redirect_uri     TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
