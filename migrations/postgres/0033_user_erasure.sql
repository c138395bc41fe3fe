-- Erasing a person (issue 19): the record of each erasure (a pseudonym,
-- never the person), and the one exception to the audit log's append-only
-- rule: inside an erasure's own transaction (its row still `active`), the
-- personal parts of entries (who, as a label, only to the pseudonym; the
-- client address, only removed; details naming them) may be rewritten. Nothing else of an entry
-- changes, and no entry is ever deleted.
-- Mirrors migrations/sqlite/0033_user_erasure.sql.

CREATE TABLE user_erasures (
    id          UUID PRIMARY KEY,
    -- The erased account's id (a random number that names nobody once the
    -- account is gone) and the pseudonym its audit entries now carry.
    user_id     UUID NOT NULL,
    pseudonym   TEXT NOT NULL,
    erased_at   TIMESTAMPTZ NOT NULL,
    -- TRUE only inside the erasure's transaction.
    active      BOOLEAN NOT NULL
);
CREATE INDEX user_erasures_active_idx ON user_erasures (active) WHERE active;

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND EXISTS (SELECT 1 FROM user_erasures WHERE active)
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
        -- The label becomes the erasure's pseudonym or stays; the client address
        -- goes or stays.
        AND (NEW.actor_label = OLD.actor_label
             OR NEW.actor_label IN (SELECT pseudonym FROM user_erasures WHERE active))
        AND (NEW.client_ip IS NULL OR NEW.client_ip IS NOT DISTINCT FROM OLD.client_ip)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
