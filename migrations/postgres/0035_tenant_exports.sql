-- A whole tenant's export (issue 19): a ZIP of JSON files (one per table
-- of the tenant's data, secrets left out) and its stored files, with a
-- manifest; produced in the background by whichever replica claims it
-- (a lease, taken again when it lapses), downloadable once by the person
-- who asked, until it expires.
-- Mirrors migrations/sqlite/0035_tenant_exports.sql.

CREATE TABLE tenant_exports (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- NULL once the person's account is erased (the file is then deleted).
    requested_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ready', 'failed', 'downloaded', 'expired')),
    -- 0 to 100, and what is being read.
    progress      BIGINT NOT NULL,
    step          TEXT NOT NULL,
    error         TEXT,
    size_bytes    BIGINT,
    sha256        TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    downloaded_at TIMESTAMPTZ,
    -- The stored ZIP's key (each attempt its own) while it exists.
    file_key      TEXT,
    stored        BOOLEAN NOT NULL,
    lease_owner   TEXT,
    lease_until   TIMESTAMPTZ
);
CREATE INDEX tenant_exports_tenant_idx ON tenant_exports (tenant_id, id);
CREATE INDEX tenant_exports_work_idx ON tenant_exports (state) WHERE state IN ('queued', 'running');
