-- Edge agents: enrollment tokens, the agents themselves, the certificates
-- issued to them, and their event history.
-- Mirrors migrations/postgres/0002_agents.sql with the SQLite types of 0001.

CREATE TABLE enrollment_tokens (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL,
    labels      TEXT NOT NULL,
    max_uses    BIGINT NOT NULL CHECK (max_uses > 0),
    uses        BIGINT NOT NULL DEFAULT 0,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT,
    CONSTRAINT enrollment_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX enrollment_tokens_tenant_idx ON enrollment_tokens (tenant_id, id);

CREATE TABLE agents (
    id                  BLOB PRIMARY KEY,
    tenant_id           BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    labels              TEXT NOT NULL,
    enrollment_token_id BLOB,
    enrolled_at         TEXT NOT NULL,
    revoked_at          TEXT,
    -- What the agent reported in its last Hello and heartbeats.
    agent_version       TEXT,
    protocol_version    BIGINT,
    hostname            TEXT NOT NULL,
    os                  TEXT NOT NULL,
    arch                TEXT NOT NULL,
    max_concurrency     BIGINT NOT NULL DEFAULT 0,
    ollama_reachable    BOOLEAN NOT NULL DEFAULT FALSE,
    models              TEXT NOT NULL DEFAULT '[]',
    running_jobs        BIGINT NOT NULL DEFAULT 0,
    -- Connection history; "online" is derived from these (see store code).
    connected_at        TEXT,
    disconnected_at     TEXT,
    disconnect_reason   TEXT,
    last_seen_at        TEXT,
    offline_at          TEXT,
    -- The newest certificate.
    cert_not_before     TEXT NOT NULL,
    cert_not_after      TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX agents_tenant_idx ON agents (tenant_id, id);
CREATE INDEX agents_last_seen_idx ON agents (last_seen_at) WHERE revoked_at IS NULL;

CREATE TABLE agent_certificates (
    fingerprint BLOB PRIMARY KEY,
    agent_id    BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    serial      TEXT NOT NULL,
    not_before  TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('enrollment', 'renewal'))
);
CREATE INDEX agent_certificates_agent_idx ON agent_certificates (agent_id);

CREATE TABLE agent_events (
    id          BLOB PRIMARY KEY,
    agent_id    BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    tenant_id   BLOB NOT NULL,
    occurred_at TEXT NOT NULL,
    kind        TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX agent_events_agent_idx ON agent_events (tenant_id, agent_id, id);
