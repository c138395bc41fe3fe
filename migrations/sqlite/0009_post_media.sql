-- Issue 14: an image on a post (Instagram needs one; Facebook Pages post it
-- as a photo), and Instagram's media container, recorded before the
-- irreversible media_publish so a retry or a reconciler checks that
-- container instead of making a second post.
ALTER TABLE social_posts ADD COLUMN image_url TEXT;
ALTER TABLE social_posts ADD COLUMN platform_container_id TEXT;
