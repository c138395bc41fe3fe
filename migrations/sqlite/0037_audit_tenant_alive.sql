-- An audit entry of a tenant that no longer exists is refused (the request
-- that would write it answers 404), except the erasure's own entries, so
-- nothing written after an erasure's audit rewrite can name a person under
-- the erased tenant. (SQLite has one writer: the check cannot race the
-- erasure.)
CREATE TRIGGER audit_events_tenant_alive BEFORE INSERT ON audit_events
    FOR EACH ROW
    WHEN NEW.tenant_id IS NOT NULL
        AND NEW.action NOT IN ('tenant.erase', 'tenant.erase_confirmed')
        AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_tenant_gone: the tenant no longer exists');
END;
