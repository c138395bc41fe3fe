-- Classifying the inbox (issue 18): each item's labels, given by an LLM
-- job on one of the tenant's agents (or, for items the policy lets leave,
-- the cloud provider when no agent can): sentiment with a score in
-- hundredths (-100 to 100), intent, urgency (and its rank for sorting:
-- high 3, normal 2, low 1; 2 until classified), language, whether it
-- holds personal data. An item waits for its job (classify_job_id); a
-- failed job leaves the item to be tried again at classify_retry_at,
-- up to three times, with the reason kept. An item may be linked to a
-- lead (source `social` when created from it).
--
-- An item of an account serving an edge_only project (or of a hipaa
-- tenant) is stored sealed (AES-256-GCM under the data key) until its
-- agent has screened it; its text column is empty until then, and then
-- holds the text as the agent's policy left it (redacted: true).
ALTER TABLE inbox_items ADD COLUMN sealed_text BYTEA;
ALTER TABLE inbox_items ADD COLUMN sealed_nonce BYTEA;
ALTER TABLE inbox_items ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE inbox_items ADD COLUMN sentiment TEXT CHECK (sentiment IN ('positive', 'neutral', 'negative'));
ALTER TABLE inbox_items ADD COLUMN sentiment_score BIGINT;
ALTER TABLE inbox_items ADD COLUMN intent TEXT
    CHECK (intent IN ('question', 'complaint', 'praise', 'purchase_interest', 'spam', 'other'));
ALTER TABLE inbox_items ADD COLUMN urgency TEXT CHECK (urgency IN ('low', 'normal', 'high'));
ALTER TABLE inbox_items ADD COLUMN urgency_rank BIGINT NOT NULL DEFAULT 2;
ALTER TABLE inbox_items ADD COLUMN language TEXT;
ALTER TABLE inbox_items ADD COLUMN personal_data BOOLEAN;
ALTER TABLE inbox_items ADD COLUMN classified_at TIMESTAMPTZ;
ALTER TABLE inbox_items ADD COLUMN classify_job_id UUID;
ALTER TABLE inbox_items ADD COLUMN classify_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inbox_items ADD COLUMN classify_retry_at TIMESTAMPTZ;
ALTER TABLE inbox_items ADD COLUMN classify_error TEXT;
-- The lead the item is linked to (a person interested in buying, say).
ALTER TABLE inbox_items ADD COLUMN lead_id UUID REFERENCES leads (id) ON DELETE SET NULL;

-- What waits for a job, oldest first.
CREATE INDEX inbox_items_unclassified_idx ON inbox_items (collected_at)
    WHERE classified_at IS NULL AND classify_job_id IS NULL;
CREATE INDEX inbox_items_classify_job_idx ON inbox_items (classify_job_id)
    WHERE classify_job_id IS NOT NULL;
-- Most urgent first, then newest (the status filtered on the way).
CREATE INDEX inbox_items_urgent_idx ON inbox_items (tenant_id, urgency_rank, posted_at, id);
