-- Real estate, part two: public listing pages and the leads they bring.
-- Mirrors migrations/sqlite/0015_listing_pages_and_leads.sql.
--
-- A property is published by giving it a slug (stable once made: a page
-- unpublished and published again keeps its address). A lead is a person
-- interested in a tenant's properties, found by e-mail address (one lead
-- per address per tenant: a second form from the same address adds to the
-- lead's timeline). Every submission of a public form carries a token of
-- its own, so a double submit is one submission. The score and its
-- breakdown are written with every interaction.

ALTER TABLE properties ADD COLUMN public_slug TEXT;
ALTER TABLE properties ADD COLUMN published_at TIMESTAMPTZ;
CREATE UNIQUE INDEX properties_public_slug_idx ON properties (public_slug) WHERE public_slug IS NOT NULL;

-- What a tenant's public forms and marketing e-mails say.
CREATE TABLE real_estate_settings (
    tenant_id        UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- The text next to the consent checkbox, stored with every consent.
    consent_text     TEXT NOT NULL,
    -- The sender's postal address, in every marketing e-mail (CAN-SPAM).
    postal_address   TEXT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE leads (
    id                  UUID PRIMARY KEY,
    tenant_id           UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    email               TEXT NOT NULL,
    -- Lower case: one lead per address per tenant.
    email_normalized    TEXT NOT NULL,
    phone               TEXT NOT NULL,
    -- `listing_page`, `import`, `manual` (later `social`).
    source              TEXT NOT NULL,
    -- `new`, `contacted`, `qualified`, `nurturing`, `won`, `lost`, `unsubscribed`.
    status              TEXT NOT NULL,
    owner_id            UUID REFERENCES users (id) ON DELETE SET NULL,
    consent_at          TIMESTAMPTZ,
    consent_text        TEXT,
    -- 0 to 100, its band, and the signals that made it (JSON).
    score               BIGINT NOT NULL,
    band                TEXT NOT NULL,
    score_detail        TEXT NOT NULL,
    interactions        BIGINT NOT NULL,
    last_interaction_at TIMESTAMPTZ NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX leads_email_idx ON leads (tenant_id, email_normalized);
CREATE INDEX leads_tenant_idx ON leads (tenant_id, id);
CREATE INDEX leads_score_idx ON leads (tenant_id, score);

-- The properties a lead asked about.
CREATE TABLE lead_properties (
    lead_id      UUID NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    property_id  UUID NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (lead_id, property_id)
);
CREATE INDEX lead_properties_property_idx ON lead_properties (property_id);

-- A lead's timeline: form submissions, notes, status and owner changes,
-- (later) e-mails sent and opened links.
CREATE TABLE lead_events (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lead_id      UUID NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    property_id  UUID REFERENCES properties (id) ON DELETE SET NULL,
    -- Who: a member, or NULL for the person themselves (a form).
    actor_id     UUID REFERENCES users (id) ON DELETE SET NULL,
    body         TEXT NOT NULL,
    -- A public form's own token: the same submission twice is one event.
    submission   TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX lead_events_lead_idx ON lead_events (lead_id, id);
CREATE UNIQUE INDEX lead_events_submission_idx ON lead_events (tenant_id, submission) WHERE submission IS NOT NULL;
