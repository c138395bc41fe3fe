-- The engagement inbox (issue 18): what people write to and about a
-- brand on its connected accounts, collected by the publishing engine
-- after publishing and before analytics. Each item is stored once per
-- account (keyed by the platform's id), with its author, text, time, the
-- post of ours it answers (when it is one), the platform id it answers
-- and its thread. People work it: open or done, an assignee.
--
-- Listening: saved searches (a hashtag, read through one of the tenant's
-- accounts); what they find lands in the inbox as `listening` items with
-- the query's id. Each query keeps its own cursor and last failure; it is
-- read in its account's round.
CREATE TABLE listening_queries (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('hashtag')),
    query      TEXT NOT NULL,
    cursor     TEXT,
    error      TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    UNIQUE (account_id, kind, query)
);
CREATE INDEX listening_queries_tenant_idx ON listening_queries (tenant_id);

CREATE TABLE inbox_items (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id       BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    platform_item_id TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('mention', 'reply', 'listening')),
    query_id         BLOB REFERENCES listening_queries (id) ON DELETE SET NULL,
    author_handle    TEXT NOT NULL,
    author_name      TEXT,
    text             TEXT NOT NULL,
    url              TEXT,
    post_id          BLOB REFERENCES social_posts (id) ON DELETE SET NULL,
    in_reply_to      TEXT,
    thread           TEXT NOT NULL,
    posted_at        TEXT NOT NULL,
    collected_at     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'done')),
    assignee_id      BLOB REFERENCES users (id) ON DELETE SET NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (account_id, platform_item_id)
);
CREATE INDEX inbox_items_tenant_idx ON inbox_items (tenant_id, posted_at);
-- The page people open (open items, newest first) and its count.
CREATE INDEX inbox_items_status_idx ON inbox_items (tenant_id, status, posted_at);
CREATE INDEX inbox_items_thread_idx ON inbox_items (account_id, thread);

-- Each account's inbox schedule (claimed like its followers' reading),
-- where the last read stopped (the platform's cursor: the newest id seen)
-- and the last failure.
ALTER TABLE social_accounts ADD COLUMN inbox_next_at TEXT;
ALTER TABLE social_accounts ADD COLUMN inbox_cursor TEXT;
ALTER TABLE social_accounts ADD COLUMN inbox_error TEXT;
