-- Erasing a person (issue 19): the record of each erasure (a pseudonym,
-- never the person), and the one exception to the audit log's append-only
-- rule: inside an erasure's own transaction (its row still `active`), the
-- personal parts of entries (who, as a label, only to the pseudonym; the
-- client address, only removed; details naming them) may be rewritten. Nothing else of an entry
-- changes, and no entry is ever deleted.
-- Mirrors migrations/postgres/0033_user_erasure.sql.

CREATE TABLE user_erasures (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL,
    pseudonym   TEXT NOT NULL,
    erased_at   TEXT NOT NULL,
    active      BOOLEAN NOT NULL
);

DROP TRIGGER audit_events_no_update;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    EXISTS (SELECT 1 FROM user_erasures WHERE active)
    AND NEW.id = OLD.id
    AND NEW.occurred_at = OLD.occurred_at
    AND NEW.tenant_id IS OLD.tenant_id
    AND NEW.actor_type = OLD.actor_type
    AND NEW.actor_id IS OLD.actor_id
    AND NEW.request_id IS OLD.request_id
    AND NEW.action = OLD.action
    AND NEW.resource_type IS OLD.resource_type
    AND NEW.resource_id IS OLD.resource_id
    AND NEW.outcome = OLD.outcome
    -- The label becomes the erasure's pseudonym or stays; the client address
    -- goes or stays.
    AND (NEW.actor_label = OLD.actor_label
         OR NEW.actor_label IN (SELECT pseudonym FROM user_erasures WHERE active))
    AND (NEW.client_ip IS NULL OR NEW.client_ip IS OLD.client_ip)
)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
