-- A whole tenant's export (issue 19). Mirrors
-- migrations/postgres/0035_tenant_exports.sql (which explains).

CREATE TABLE tenant_exports (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    requested_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ready', 'failed', 'downloaded', 'expired')),
    progress      INTEGER NOT NULL,
    step          TEXT NOT NULL,
    error         TEXT,
    size_bytes    INTEGER,
    sha256        TEXT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    expires_at    TEXT,
    downloaded_at TEXT,
    file_key      TEXT,
    stored        BOOLEAN NOT NULL,
    lease_owner   TEXT,
    lease_until   TEXT
);
CREATE INDEX tenant_exports_tenant_idx ON tenant_exports (tenant_id, id);
CREATE INDEX tenant_exports_work_idx ON tenant_exports (state);
