-- Real estate: properties (the listing as a record of its own, versioned)
-- and their photos; an activity generated from a property keeps the link
-- and the property's version at the time. Mirrors migrations/sqlite/0014_properties.sql.
--
-- A property belongs to a project and goes with it. Photos are stored
-- through the file storage (re-encoded on the way in, so no camera
-- metadata survives); their rows hold the order (position 0 is the cover)
-- and the alt text. `city_key` and `search_text` are lowercased copies
-- written by the application, so filters and search behave the same on
-- both backends.

CREATE TABLE properties (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id      UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- 1 when created; every change of the record's fields adds one.
    version         BIGINT NOT NULL DEFAULT 1,
    street          TEXT NOT NULL,
    city            TEXT NOT NULL,
    city_key        TEXT NOT NULL,
    region          TEXT NOT NULL,
    postal_code     TEXT NOT NULL,
    -- ISO 3166-1 alpha-2.
    country         TEXT NOT NULL,
    -- Whole units of `currency` (ISO 4217).
    price           BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    beds            BIGINT NOT NULL,
    -- Bathrooms times two: a half bath is 1.
    half_baths      BIGINT NOT NULL,
    floor_area      BIGINT NOT NULL,
    -- `sqft` or `m2`, for the floor area and the lot.
    area_unit       TEXT NOT NULL,
    lot_size        BIGINT,
    year_built      BIGINT,
    property_type   TEXT NOT NULL,
    status          TEXT NOT NULL,
    -- A JSON array of short texts.
    features        TEXT NOT NULL,
    description     TEXT NOT NULL,
    agent_name      TEXT NOT NULL,
    agent_contact   TEXT NOT NULL,
    -- An MLS number or the agency's own reference; unique in a project.
    reference       TEXT,
    search_text     TEXT NOT NULL,
    created_by      UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CHECK (price > 0),
    CHECK (status IN ('coming_soon', 'active', 'pending', 'sold', 'off_market'))
);
CREATE INDEX properties_tenant_idx ON properties (tenant_id, id);
CREATE INDEX properties_project_idx ON properties (project_id, id);
CREATE UNIQUE INDEX properties_reference_idx ON properties (project_id, reference) WHERE reference IS NOT NULL;

CREATE TABLE property_photos (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    property_id     UUID NOT NULL REFERENCES properties (id) ON DELETE CASCADE,
    -- 0 is the cover; the rest in the order shown.
    position        BIGINT NOT NULL,
    alt             TEXT NOT NULL,
    width           BIGINT NOT NULL,
    height          BIGINT NOT NULL,
    -- The stored (re-encoded) file's size.
    bytes           BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX property_photos_property_idx ON property_photos (property_id, position);

ALTER TABLE activities ADD COLUMN property_id UUID REFERENCES properties (id) ON DELETE SET NULL;
ALTER TABLE activities ADD COLUMN property_version BIGINT;
CREATE INDEX activities_property_idx ON activities (property_id) WHERE property_id IS NOT NULL;
