-- Retention (issue 19): per tenant, how long inbox items and leads are
-- kept and after how long an inactive contact is anonymised (NULL: kept
-- for ever, the default); a daily run per tenant, once across replicas,
-- with what it did. Mirrors migrations/postgres/0031_retention.sql.

CREATE TABLE retention_policies (
    tenant_id          BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_days         BIGINT CHECK (inbox_days BETWEEN 1 AND 36500),
    lead_days          BIGINT CHECK (lead_days BETWEEN 1 AND 36500),
    anonymise_contacts_days BIGINT CHECK (anonymise_contacts_days BETWEEN 1 AND 36500),
    updated_at         TEXT NOT NULL
);

CREATE TABLE retention_runs (
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The UTC day (YYYY-MM-DD) the run was for.
    day        TEXT NOT NULL,
    ran_at     TEXT NOT NULL,
    -- What it did, JSON (counts).
    report     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- When retention replaced the contact's personal data.
ALTER TABLE leads ADD COLUMN anonymised_at TEXT;
