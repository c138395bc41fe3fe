-- Comments: threads on an activity (optionally anchored to a passage of a
-- content version) or on a scheduled post, with the members each comment
-- mentions. Mirrors migrations/sqlite/0011_comments.sql.
--
-- A comment belongs to exactly one item, and goes with it when the item is
-- deleted (comments are content). A thread is its first comment
-- (`thread_id` NULL) and the replies naming it. A deleted comment keeps its
-- row, without its text, so the thread around it stays readable.

CREATE TABLE comments (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    activity_id     UUID REFERENCES activities (id) ON DELETE CASCADE,
    post_id         UUID REFERENCES social_posts (id) ON DELETE CASCADE,
    thread_id       UUID REFERENCES comments (id) ON DELETE CASCADE,
    author_id       UUID REFERENCES users (id) ON DELETE SET NULL,
    -- Markdown, as written; rendered sanitised on the way out.
    body            TEXT NOT NULL,
    -- The content version and the passage of it the thread is about.
    anchor_version  BIGINT,
    anchor_quote    TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    edited_at       TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    -- On a thread's first comment: the thread is resolved.
    resolved_at     TIMESTAMPTZ,
    resolved_by     UUID REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((activity_id IS NULL) <> (post_id IS NULL)),
    CHECK ((anchor_version IS NULL) = (anchor_quote IS NULL))
);
CREATE INDEX comments_activity_idx ON comments (activity_id, id) WHERE activity_id IS NOT NULL;
CREATE INDEX comments_post_idx ON comments (post_id, id) WHERE post_id IS NOT NULL;
CREATE INDEX comments_thread_idx ON comments (thread_id) WHERE thread_id IS NOT NULL;

CREATE TABLE comment_mentions (
    comment_id  UUID NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (comment_id, user_id)
);
