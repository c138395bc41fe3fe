-- A fifth job kind, `classify` (inbox items labelled on an agent, issue 18).
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('chat', 'embed', 'activity', 'ingest', 'classify'));
