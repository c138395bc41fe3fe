-- Two-factor sign-in (issue 19): a TOTP secret per user (RFC 6238), sealed
-- with the data key, and single-use recovery codes (only their SHA-256);
-- and per tenant, whether its members must use it.
-- Mirrors migrations/sqlite/0030_two_factor.sql.

CREATE TABLE two_factor (
    user_id           UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce      BYTEA NOT NULL,
    -- NULL while the person is still setting it up (no code confirmed yet).
    confirmed_at      TIMESTAMPTZ,
    -- The last TOTP time step accepted: a code is good once.
    last_step         BIGINT,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE tenant_security (
    tenant_id          UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    require_two_factor BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at         TIMESTAMPTZ NOT NULL
);
