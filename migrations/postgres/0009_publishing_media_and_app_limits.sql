-- Issue 14: an image on a post (Instagram needs one; Facebook Pages post it
-- as a photo), and Instagram's media container, recorded before the
-- irreversible media_publish so a retry or a reconciler checks that
-- container instead of making a second post.
ALTER TABLE social_posts ADD COLUMN image_url TEXT;
ALTER TABLE social_posts ADD COLUMN platform_container_id TEXT;

-- A platform's limit on Marketer's app as a whole (X's 24-hour app limit
-- and usage cap, Meta's app usage at 100 %): every account on it waits.
CREATE TABLE platform_limits (
    platform      TEXT PRIMARY KEY,
    limited_until TIMESTAMPTZ NOT NULL,
    note          TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
