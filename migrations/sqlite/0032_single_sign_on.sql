-- Single sign-on with OpenID Connect (issue 19): one identity provider per
-- tenant, the sign-ins under way (state, nonce and PKCE verifier, each
-- good once), the provider accounts linked to people, which organisation's
-- sign-in a session came from, and whether an organisation requires it.
-- Mirrors migrations/postgres/0032_single_sign_on.sql.

CREATE TABLE sso_connections (
    tenant_id         BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer            TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    -- The client secret, sealed with the data key (the tenant as
    -- associated data); never returned, only its last characters.
    secret_ciphertext BLOB NOT NULL,
    secret_nonce      BLOB NOT NULL,
    secret_hint       TEXT NOT NULL,
    -- JSON list of e-mail domains whose people may sign in.
    allowed_domains   TEXT NOT NULL,
    default_role      TEXT NOT NULL,
    -- The ID token claim listing the person's groups, and a JSON object
    -- from group name to role (empty: every newcomer gets default_role).
    groups_claim      TEXT NOT NULL,
    group_roles       TEXT NOT NULL,
    enabled           BOOLEAN NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

-- A sign-in sent to the provider and not back yet. Only the state's
-- SHA-256 is kept (the browser holds the state); the row is deleted when
-- the provider sends the person back, so a callback works once.
CREATE TABLE sso_logins (
    state_hash    BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX sso_logins_expiry_idx ON sso_logins (expires_at);

-- A provider account (issuer and subject) linked to a person, per tenant:
-- the subject, not the e-mail address, says who comes back.
CREATE TABLE sso_identities (
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, issuer, subject)
);
CREATE INDEX sso_identities_user_idx ON sso_identities (user_id);

-- The organisation whose single sign-on opened the session (NULL: a
-- password sign-in). Such a session reaches that organisation only.
ALTER TABLE sessions ADD COLUMN sso_tenant_id BLOB;

ALTER TABLE tenant_security ADD COLUMN require_sso BOOLEAN NOT NULL DEFAULT FALSE;
