-- Listening for keywords and brand names, not only hashtags: a query's
-- kind is `hashtag` (the tag, without `#`) or `keyword` (a word or
-- phrase, matched in any case).
ALTER TABLE listening_queries DROP CONSTRAINT listening_queries_kind_check;
ALTER TABLE listening_queries ADD CONSTRAINT listening_queries_kind_check CHECK (kind IN ('hashtag', 'keyword'));

-- Keyword search on Mastodon needs the `read:search` scope, which an
-- instance grants only to an app registered with it: each app remembers
-- its scopes, and one registered with others is registered again.
ALTER TABLE mastodon_apps ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read:accounts read:statuses read:notifications write:statuses';
