-- Per-key request counts by minute (issue 19's API rate limits), shared by
-- the replicas: one row per key and window, incremented by each request.
-- Old windows are pruned by the replicas as they go.
-- Mirrors migrations/sqlite/0029_rate_limits.sql (where one process counts
-- in memory and the table stays empty).

CREATE TABLE rate_windows (
    key          TEXT NOT NULL,
    -- Unix seconds of the minute's start.
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_windows_start_idx ON rate_windows (window_start);
