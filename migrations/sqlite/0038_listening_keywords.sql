-- no-transaction
-- Listening for keywords and brand names, not only hashtags: a query's
-- kind is `hashtag` (the tag, without `#`) or `keyword` (a word or
-- phrase, matched in any case). Mirrors
-- migrations/postgres/0038_listening_keywords.sql.
--
-- SQLite cannot change a CHECK constraint in place, so listening_queries
-- is rebuilt (SQLite's twelve-step procedure). Foreign keys are off during
-- the rebuild, or dropping the old table would clear inbox items' query
-- and delete the crisis alerts of every query; the rebuild is one
-- transaction.

PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE listening_queries_new (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id BLOB NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('hashtag', 'keyword')),
    query      TEXT NOT NULL,
    cursor     TEXT,
    error      TEXT,
    created_by BLOB,
    created_at TEXT NOT NULL,
    UNIQUE (account_id, kind, query)
);
INSERT INTO listening_queries_new (id, tenant_id, account_id, kind, query, cursor, error, created_by, created_at)
    SELECT id, tenant_id, account_id, kind, query, cursor, error, created_by, created_at FROM listening_queries;
DROP TABLE listening_queries;
ALTER TABLE listening_queries_new RENAME TO listening_queries;
CREATE INDEX listening_queries_tenant_idx ON listening_queries (tenant_id);

-- Keyword search on Mastodon needs the `read:search` scope, which an
-- instance grants only to an app registered with it: each app remembers
-- its scopes, and one registered with others is registered again.
ALTER TABLE mastodon_apps ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read:accounts read:statuses read:notifications write:statuses';

COMMIT;
PRAGMA foreign_keys = ON;
