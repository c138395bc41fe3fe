-- A follow-up step may carry a personal paragraph written by the LLM as a
-- job (on the tenant's edge agent; in the cloud only where the project
-- allows it). One job per enrollment and step, ever (the primary key): it
-- is inserted in the transaction that creates the job, so replicas racing
-- to start it create one. The step's e-mail waits for the job to end.
CREATE TABLE sequence_paragraphs (
    enrollment_id BLOB NOT NULL REFERENCES lead_enrollments (id) ON DELETE CASCADE,
    step          BIGINT NOT NULL,
    job_id        BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, step)
);
CREATE INDEX sequence_paragraphs_job_idx ON sequence_paragraphs (job_id);
