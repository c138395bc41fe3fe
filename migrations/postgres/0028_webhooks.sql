-- Outbound webhooks (issue 19): a tenant's endpoints, the events its
-- changes raise (each written in the transaction of its cause, with the
-- exact JSON body every delivery sends), one delivery per endpoint and
-- event (a durable outbox row with a lease), and each attempt's outcome
-- for the delivery log.
-- Mirrors migrations/sqlite/0028_webhooks.sql.

CREATE TABLE webhook_endpoints (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    -- A JSON array of event types.
    events            TEXT NOT NULL,
    -- The signing secret, sealed with the data key (the tenant as
    -- associated data): it must be read back to sign, so it is not hashed.
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce      BYTEA NOT NULL,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    created_by        UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_events (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    -- The body as sent, byte for byte, on every attempt.
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_events_tenant_idx ON webhook_events (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         UUID NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    -- pending → claimed (a replica holds it and may be posting it) →
    -- delivered (a 2xx) or pending again (a retry) or failed (out of tries,
    -- or refused for good); a person may redeliver any of them.
    state            TEXT NOT NULL CHECK (state IN ('pending', 'claimed', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id           UUID PRIMARY KEY,
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    duration_ms  BIGINT NOT NULL,
    -- The HTTP status, when one came back.
    status       BIGINT,
    error        TEXT,
    -- The first 500 characters of the answer's body.
    response     TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt);
