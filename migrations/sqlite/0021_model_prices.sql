-- What a model costs per million tokens, per tenant, in micro-dollars
-- (USD × 1,000,000), for estimating what a cloud run cost.
CREATE TABLE model_prices (
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    input_micros_per_million  INTEGER NOT NULL,
    output_micros_per_million INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, model)
);
