-- An activity's content is the last run that succeeded, not the latest run:
-- a regeneration that fails or is cancelled leaves the content, its
-- versions and its approval as they were. Each edit carries the compliance
-- findings of its own text (JSON list, NULL where no rule applies).
-- Mirrors migrations/postgres/0006_content_runs.sql.

ALTER TABLE activities ADD COLUMN content_job_id BLOB;
UPDATE activities SET content_job_id = current_job_id
    WHERE current_job_id IN (SELECT id FROM jobs WHERE status = 'succeeded');
ALTER TABLE activity_versions ADD COLUMN findings TEXT;
