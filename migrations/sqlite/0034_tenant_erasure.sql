-- Erasing a whole tenant (issue 19), across the control plane and its edge
-- agents: the record of the erasure, the agents that must confirm, the
-- certificates by which a returning agent is recognised for that one
-- purpose, and the audit log's exception for the tenant's own entries.
-- Mirrors migrations/postgres/0034_tenant_erasure.sql (which explains).

CREATE TABLE tenant_erasures (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL,
    requested_by  BLOB,
    erased_at     TEXT NOT NULL,
    completed_at  TEXT,
    files_pending BOOLEAN NOT NULL,
    report        TEXT NOT NULL,
    active        BOOLEAN NOT NULL
);
CREATE INDEX tenant_erasures_requested_by_idx ON tenant_erasures (requested_by, id);

CREATE TABLE tenant_erasure_agents (
    erasure_id   BLOB NOT NULL REFERENCES tenant_erasures (id) ON DELETE CASCADE,
    agent_id     BLOB NOT NULL,
    name         TEXT NOT NULL,
    confirmed_at TEXT,
    report       TEXT,
    unreachable  TEXT,
    PRIMARY KEY (erasure_id, agent_id)
);

CREATE TABLE tenant_erasure_certificates (
    fingerprint BLOB PRIMARY KEY,
    erasure_id  BLOB NOT NULL REFERENCES tenant_erasures (id) ON DELETE CASCADE,
    agent_id    BLOB NOT NULL
);

DROP TRIGGER audit_events_no_update;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    NEW.id = OLD.id
    AND NEW.occurred_at = OLD.occurred_at
    AND NEW.tenant_id IS OLD.tenant_id
    AND NEW.actor_type = OLD.actor_type
    AND NEW.actor_id IS OLD.actor_id
    AND NEW.request_id IS OLD.request_id
    AND NEW.action = OLD.action
    AND NEW.resource_type IS OLD.resource_type
    AND NEW.resource_id IS OLD.resource_id
    AND NEW.outcome = OLD.outcome
    -- The client address goes or stays.
    AND (NEW.client_ip IS NULL OR NEW.client_ip IS OLD.client_ip)
    AND (
        -- A person's erasure: the label becomes its pseudonym or stays.
        (EXISTS (SELECT 1 FROM user_erasures WHERE active)
         AND (NEW.actor_label = OLD.actor_label
              OR NEW.actor_label IN (SELECT pseudonym FROM user_erasures WHERE active)))
        -- A tenant's erasure, for its own entries: the label becomes a
        -- pseudonym of the actor's kind or stays.
        OR (NEW.tenant_id IS NOT NULL
            AND EXISTS (SELECT 1 FROM tenant_erasures WHERE active AND tenant_id = NEW.tenant_id)
            AND (NEW.actor_label = OLD.actor_label
                 OR (substr(NEW.actor_label, 1, length(NEW.actor_type) + 1) = NEW.actor_type || '-'
                     AND length(NEW.actor_label) = length(NEW.actor_type) + 17
                     AND substr(NEW.actor_label, length(NEW.actor_type) + 2) NOT GLOB '*[^0-9a-f]*')))
    )
)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
