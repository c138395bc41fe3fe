-- Retention of generated content and job outputs: how many days an
-- activity is kept after its last change (and its last run), and a finished
-- job that nothing else keeps after it ended; NULL keeps them for ever.
ALTER TABLE retention_policies ADD COLUMN content_days BIGINT;
ALTER TABLE retention_policies ADD COLUMN job_days BIGINT;
