-- An audit entry of a tenant that no longer exists is refused (the request
-- that would write it answers 404), except the erasure's own entries. The
-- row lock serialises it with an erasure: an entry written while its
-- tenant is being erased waits for the erasure to commit and is then
-- refused, so nothing written after the erasure's audit rewrite can name
-- a person under the erased tenant.
CREATE FUNCTION audit_events_tenant_alive() RETURNS trigger AS $$
BEGIN
    IF NEW.tenant_id IS NOT NULL AND NEW.action NOT IN ('tenant.erase', 'tenant.erase_confirmed') THEN
        PERFORM 1 FROM tenants WHERE id = NEW.tenant_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit_tenant_gone: tenant % no longer exists', NEW.tenant_id;
        END IF;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_tenant_alive BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_tenant_alive();
