-- Analytics: what each published post achieved, as a time series of
-- readings in one normalised schema (schema_version 1). Every metric may
-- be absent (NULL): a platform that does not report it, or stopped
-- reporting it, is never recorded as zero. `raw` keeps the platform's
-- answer for what the schema does not name.
CREATE TABLE post_metrics (
    post_id        BLOB NOT NULL REFERENCES social_posts (id) ON DELETE CASCADE,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    collected_at   TEXT NOT NULL,
    schema_version BIGINT NOT NULL,
    impressions    BIGINT,
    reach          BIGINT,
    likes          BIGINT,
    comments       BIGINT,
    shares         BIGINT,
    saves          BIGINT,
    link_clicks    BIGINT,
    profile_visits BIGINT,
    video_views    BIGINT,
    raw            TEXT NOT NULL,
    PRIMARY KEY (post_id, collected_at)
);
CREATE INDEX post_metrics_tenant_idx ON post_metrics (tenant_id, collected_at);

-- The collector's schedule per post: when it is next due (NULL: an hour
-- after publishing), claimed by moving it forward (compare-and-set), and
-- the last failure, shown on the post.
ALTER TABLE social_posts ADD COLUMN metrics_next_at TEXT;
ALTER TABLE social_posts ADD COLUMN metrics_error TEXT;
CREATE INDEX social_posts_metrics_due ON social_posts (metrics_next_at) WHERE status = 'published';
