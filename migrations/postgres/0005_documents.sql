-- Documents: metadata of the files that ground a project's content. The
-- files' text, chunks and vectors live in the index on the edge agent that
-- holds them; uploads (cloud_allowed projects only) keep the file in the
-- control plane's storage until it is deleted. Agents report the policy
-- they apply and the projects whose index they hold; jobs may be bound to
-- the agents that hold a project's index; a fourth job kind, `ingest`.
-- Mirrors migrations/sqlite/0005_documents.sql.

CREATE TABLE documents (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id      UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    -- `upload` (through the API) or `edge` (ingested on the agent host).
    origin          TEXT NOT NULL CHECK (origin IN ('upload', 'edge')),
    -- Where an upload's file is kept (the storage's key); NULL for edge.
    storage_key     TEXT,
    -- The agent whose index holds it.
    agent_id        UUID REFERENCES agents (id) ON DELETE SET NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
    error           TEXT,
    chunk_count     BIGINT NOT NULL DEFAULT 0,
    embedding_model TEXT,
    indexed_at      TIMESTAMPTZ,
    -- An upload's ingest job.
    job_id          UUID,
    -- Deleted by a person; kept until the agent that holds it confirms.
    deleted_at      TIMESTAMPTZ,
    created_by      UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX documents_project_idx ON documents (tenant_id, project_id, id);
CREATE INDEX documents_agent_idx ON documents (agent_id) WHERE agent_id IS NOT NULL;

-- The agent's privacy policy as it applies it (JSON), and the projects whose
-- index it holds (a JSON array of ids).
ALTER TABLE agents ADD COLUMN policy TEXT;
ALTER TABLE agents ADD COLUMN projects TEXT NOT NULL DEFAULT '[]';

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('chat', 'embed', 'activity', 'ingest'));
-- Only an agent holding this project's document index may run the job.
ALTER TABLE jobs ADD COLUMN index_project_id UUID;
