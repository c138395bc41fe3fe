-- Erasing a whole tenant (issue 19), across the control plane and its edge
-- agents. The tenant's rows go at once (they cascade from `tenants`); what
-- stays is the record of the erasure, which agents must still delete what
-- they hold and which confirmed (with what they deleted), and the
-- certificates by which a returning agent is recognised for that one
-- purpose. The audit log keeps the tenant's entries: inside the erasure's
-- own transaction (its row still `active`) their people become pseudonyms,
-- client addresses go and details lose their text; nothing else of an
-- entry changes, and no entry is ever deleted.
-- Mirrors migrations/sqlite/0034_tenant_erasure.sql.

CREATE TABLE tenant_erasures (
    id            UUID PRIMARY KEY,
    -- The erased tenant's id: a random number that names nobody once the
    -- tenant is gone.
    tenant_id     UUID NOT NULL,
    -- Who asked (their account outlives the tenant); NULL for the operator.
    requested_by  UUID,
    erased_at     TIMESTAMPTZ NOT NULL,
    -- Set when every agent has confirmed and the stored files are gone.
    completed_at  TIMESTAMPTZ,
    -- Stored files still to delete (a failure is retried).
    files_pending BOOLEAN NOT NULL,
    -- What the control plane deleted (counts, JSON).
    report        TEXT NOT NULL,
    -- TRUE only inside the erasure's transaction.
    active        BOOLEAN NOT NULL
);
CREATE INDEX tenant_erasures_active_idx ON tenant_erasures (tenant_id) WHERE active;
CREATE INDEX tenant_erasures_requested_by_idx ON tenant_erasures (requested_by, id);

CREATE TABLE tenant_erasure_agents (
    erasure_id   UUID NOT NULL REFERENCES tenant_erasures (id) ON DELETE CASCADE,
    agent_id     UUID NOT NULL,
    name         TEXT NOT NULL,
    confirmed_at TIMESTAMPTZ,
    -- The agent's TenantErased report (counts, JSON), once confirmed.
    report       TEXT,
    -- Why the agent cannot be told (revoked, certificate expired): its
    -- host must be wiped by hand; it does not hold the erasure open.
    unreachable  TEXT,
    PRIMARY KEY (erasure_id, agent_id)
);

CREATE TABLE tenant_erasure_certificates (
    fingerprint BYTEA PRIMARY KEY,
    erasure_id  UUID NOT NULL REFERENCES tenant_erasures (id) ON DELETE CASCADE,
    agent_id    UUID NOT NULL
);

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.id = OLD.id
        AND NEW.occurred_at = OLD.occurred_at
        AND NEW.tenant_id IS NOT DISTINCT FROM OLD.tenant_id
        AND NEW.actor_type = OLD.actor_type
        AND NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id
        AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id
        AND NEW.action = OLD.action
        AND NEW.resource_type IS NOT DISTINCT FROM OLD.resource_type
        AND NEW.resource_id IS NOT DISTINCT FROM OLD.resource_id
        AND NEW.outcome = OLD.outcome
        -- The client address goes or stays.
        AND (NEW.client_ip IS NULL OR NEW.client_ip IS NOT DISTINCT FROM OLD.client_ip)
        AND (
            -- A person's erasure: the label becomes its pseudonym or stays.
            (EXISTS (SELECT 1 FROM user_erasures WHERE active)
             AND (NEW.actor_label = OLD.actor_label
                  OR NEW.actor_label IN (SELECT pseudonym FROM user_erasures WHERE active)))
            -- A tenant's erasure, for its own entries: the label becomes a
            -- pseudonym of the actor's kind (`<type>-` and 16 hex digits) or
            -- stays.
            OR (NEW.tenant_id IS NOT NULL
                AND EXISTS (SELECT 1 FROM tenant_erasures WHERE active AND tenant_id = NEW.tenant_id)
                AND (NEW.actor_label = OLD.actor_label
                     OR (left(NEW.actor_label, length(NEW.actor_type) + 1) = NEW.actor_type || '-'
                         AND substr(NEW.actor_label, length(NEW.actor_type) + 2) ~ '^[0-9a-f]{16}$')))
        )
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
