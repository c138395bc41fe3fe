-- Analytics: each connected account's followers over time, one reading
-- per account and UTC day (the day's latest reading wins). The collector
-- reads them daily; `followers_next_at` on the account is its schedule
-- (claimed by compare-and-set, as posts' metrics are) and
-- `followers_error` the last failure.
CREATE TABLE account_followers (
    account_id   UUID NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    followers    BIGINT NOT NULL,
    collected_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE INDEX account_followers_tenant_idx ON account_followers (tenant_id, day);

ALTER TABLE social_accounts ADD COLUMN followers_next_at TIMESTAMPTZ;
ALTER TABLE social_accounts ADD COLUMN followers_error TEXT;
