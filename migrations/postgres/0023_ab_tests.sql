-- A/B tests: two to five variants of a post, each a post of its own
-- (written with the test in one transaction), compared on engagement rate
-- once the window after the last variant's time has passed. The decision
-- (each variant's numbers, the test, the verdict, the winner's traits) is
-- kept as JSON.
CREATE TABLE ab_tests (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    window_hours BIGINT NOT NULL,
    ends_at      TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'decided')),
    decision     TEXT,
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    decided_at   TIMESTAMPTZ
);
CREATE INDEX ab_tests_tenant_idx ON ab_tests (tenant_id, created_at);
CREATE INDEX ab_tests_due_idx ON ab_tests (ends_at) WHERE status = 'running';

CREATE TABLE ab_test_variants (
    test_id   UUID NOT NULL REFERENCES ab_tests (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    label     TEXT NOT NULL,
    post_id   UUID NOT NULL REFERENCES social_posts (id) ON DELETE CASCADE,
    PRIMARY KEY (test_id, label)
);
CREATE INDEX ab_test_variants_post_idx ON ab_test_variants (post_id);
