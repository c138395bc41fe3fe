-- Two-factor sign-in (issue 19): a TOTP secret per user (RFC 6238), sealed
-- with the data key, and single-use recovery codes (only their SHA-256);
-- and per tenant, whether its members must use it.
-- Mirrors migrations/postgres/0030_two_factor.sql.

CREATE TABLE two_factor (
    user_id           BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_ciphertext BLOB NOT NULL,
    secret_nonce      BLOB NOT NULL,
    -- NULL while the person is still setting it up (no code confirmed yet).
    confirmed_at      TEXT,
    -- The last TOTP time step accepted: a code is good once.
    last_step         BIGINT,
    created_at        TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE tenant_security (
    tenant_id          BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    require_two_factor BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at         TEXT NOT NULL
);
