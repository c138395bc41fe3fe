//! [`CommentStore`] for [`SqlStore`]: comment threads on activities and
//! posts, and the members they mention.

use super::*;
use crate::store::{
    Anchor, Comment, CommentStore, CommentSubject, MAX_COMMENTS_PER_ITEM, Mentioned, NewComment,
};

#[derive(FromRow)]
struct CommentRow {
    id: Uuid,
    tenant_id: Uuid,
    activity_id: Option<Uuid>,
    post_id: Option<Uuid>,
    thread_id: Option<Uuid>,
    author_id: Option<Uuid>,
    author_name: Option<String>,
    body: String,
    anchor_version: Option<i64>,
    anchor_quote: Option<String>,
    created_at: Timestamp,
    edited_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    resolved_by: Option<Uuid>,
}

impl TryFrom<CommentRow> for Comment {
    type Error = StoreError;
    fn try_from(r: CommentRow) -> Result<Comment> {
        let subject = match (r.activity_id, r.post_id) {
            (Some(id), None) => CommentSubject::Activity(id),
            (None, Some(id)) => CommentSubject::Post(id),
            _ => return Err(corrupt("comments.subject")("neither or both of activity_id and post_id")),
        };
        let anchor = match (r.anchor_version, r.anchor_quote) {
            (Some(version), Some(quote)) => Some(Anchor { version, quote }),
            _ => None,
        };
        Ok(Comment {
            id: r.id,
            tenant_id: r.tenant_id,
            subject,
            thread_id: r.thread_id,
            author_id: r.author_id,
            author_name: r.author_name,
            body: r.body,
            anchor,
            mentions: Vec::new(),
            created_at: r.created_at,
            edited_at: r.edited_at,
            deleted_at: r.deleted_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
        })
    }
}

const COMMENT_SELECT: &str = "SELECT c.id, c.tenant_id, c.activity_id, c.post_id, c.thread_id, c.author_id, \
     COALESCE(u.display_name, c.author_email || ' (external)') AS author_name, c.body, c.anchor_version, c.anchor_quote, c.created_at, c.edited_at, \
     c.deleted_at, c.resolved_at, c.resolved_by FROM comments c LEFT JOIN users u ON u.id = c.author_id";

#[derive(FromRow)]
struct MentionRow {
    comment_id: Uuid,
    user_id: Uuid,
    display_name: String,
    email: String,
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Fills in the mentions of `comments`.
    async fn with_mentions(conn: &mut DB::Connection, comments: &mut [Comment]) -> Result<()> {
        // One query per item's comments would be nicer; an IN list of
        // thousands of ids is not portable, so read the item's mentions.
        let Some(first) = comments.first() else { return Ok(()) };
        let (column, subject) = match first.subject {
            CommentSubject::Activity(id) => ("c.activity_id", id),
            CommentSubject::Post(id) => ("c.post_id", id),
        };
        let rows: Vec<MentionRow> = sqlx::query_as(sql(&[
            "SELECT m.comment_id, m.user_id, u.display_name, u.email FROM comment_mentions m \
             JOIN comments c ON c.id = m.comment_id JOIN users u ON u.id = m.user_id \
             WHERE c.tenant_id = $1 AND ",
            column,
            " = $2 ORDER BY u.display_name, u.id",
        ]))
        .bind(first.tenant_id)
        .bind(subject)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            if let Some(c) = comments.iter_mut().find(|c| c.id == row.comment_id) {
                c.mentions.push(Mentioned { user_id: row.user_id, name: row.display_name, email: row.email });
            }
        }
        Ok(())
    }

    async fn fetch_comment(conn: &mut DB::Connection, tenant_id: Uuid, id: Uuid) -> Result<Option<Comment>> {
        let row: Option<CommentRow> =
            sqlx::query_as(sql(&[COMMENT_SELECT, " WHERE c.tenant_id = $1 AND c.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let mut comment = Comment::try_from(row)?;
        let rows: Vec<MentionRow> = sqlx::query_as(
            "SELECT m.comment_id, m.user_id, u.display_name, u.email FROM comment_mentions m \
             JOIN users u ON u.id = m.user_id WHERE m.comment_id = $1 ORDER BY u.display_name, u.id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        comment.mentions = rows
            .into_iter()
            .map(|r| Mentioned { user_id: r.user_id, name: r.display_name, email: r.email })
            .collect();
        Ok(Some(comment))
    }

    /// Locks a comment's row for a change; `NotFound` for another tenant's.
    async fn lock_comment(conn: &mut DB::Connection, tenant_id: Uuid, id: Uuid) -> Result<()> {
        let locked: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM comments WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        locked.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn replace_mentions(conn: &mut DB::Connection, id: Uuid, mentions: &[Uuid]) -> Result<()> {
        sqlx::query("DELETE FROM comment_mentions WHERE comment_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        for user_id in mentions {
            sqlx::query(
                "INSERT INTO comment_mentions (comment_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT (comment_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(*user_id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> CommentStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn comments(&self, tenant_id: Uuid, subject: CommentSubject) -> Result<Vec<Comment>> {
        let (column, id) = match subject {
            CommentSubject::Activity(id) => ("c.activity_id", id),
            CommentSubject::Post(id) => ("c.post_id", id),
        };
        let mut conn = self.read.acquire().await?;
        let rows: Vec<CommentRow> = sqlx::query_as(sql(&[
            COMMENT_SELECT,
            " WHERE c.tenant_id = $1 AND ",
            column,
            " = $2 ORDER BY c.id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(MAX_COMMENTS_PER_ITEM)
        .fetch_all(&mut *conn)
        .await?;
        let mut comments: Vec<Comment> = rows_into(rows)?;
        Self::with_mentions(&mut conn, &mut comments).await?;
        Ok(comments)
    }

    async fn comment(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Comment>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_comment(&mut conn, tenant_id, id).await
    }

    async fn add_comment(&self, c: &NewComment, audit: &NewAuditEvent) -> Result<Comment> {
        let mut tx = self.write.begin().await?;
        // Lock the item: it exists in this tenant, and the cap holds under
        // concurrent comments.
        let (table, column, subject) = match c.subject {
            CommentSubject::Activity(id) => ("activities", "activity_id", id),
            CommentSubject::Post(id) => ("social_posts", "post_id", id),
        };
        let locked: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM ",
            table,
            " WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(c.tenant_id)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Err(StoreError::NotFound);
        }
        let count: i64 = sqlx::query_scalar(sql(&[
            "SELECT COUNT(*) FROM comments WHERE tenant_id = $1 AND ",
            column,
            " = $2",
        ]))
        .bind(c.tenant_id)
        .bind(subject)
        .fetch_one(&mut *tx)
        .await?;
        if count >= MAX_COMMENTS_PER_ITEM {
            return Err(StoreError::Conflict {
                code: "too_many_comments",
                message: format!(
                    "this item has {MAX_COMMENTS_PER_ITEM} comments, the most it can hold; resolve or delete some"
                ),
            });
        }
        if let Some(thread) = c.thread_id {
            let same: Option<Uuid> = sqlx::query_scalar(sql(&[
                "SELECT id FROM comments WHERE tenant_id = $1 AND id = $2 AND thread_id IS NULL AND ",
                column,
                " = $3",
            ]))
            .bind(c.tenant_id)
            .bind(thread)
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
            if same.is_none() {
                return Err(StoreError::Invalid {
                    field: "thread_id",
                    message: "is not a thread of this item".into(),
                });
            }
        }
        let (activity_id, post_id) = match c.subject {
            CommentSubject::Activity(id) => (Some(id), None),
            CommentSubject::Post(id) => (None, Some(id)),
        };
        sqlx::query(
            "INSERT INTO comments (id, tenant_id, activity_id, post_id, thread_id, author_id, body, \
             anchor_version, anchor_quote, created_at, author_email) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.id)
        .bind(c.tenant_id)
        .bind(activity_id)
        .bind(post_id)
        .bind(c.thread_id)
        .bind(c.author_id)
        .bind(c.body.as_str())
        .bind(c.anchor.as_ref().map(|a| a.version))
        .bind(c.anchor.as_ref().map(|a| a.quote.clone()))
        .bind(audit.occurred_at)
        .bind(c.author_email.clone())
        .execute(&mut *tx)
        .await?;
        Self::replace_mentions(&mut tx, c.id, &c.mentions).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let comment = Self::fetch_comment(&mut tx, c.tenant_id, c.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(comment)
    }

    async fn edit_comment(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        body: &str,
        mentions: &[Uuid],
        audit: &NewAuditEvent,
    ) -> Result<Comment> {
        let mut tx = self.write.begin().await?;
        Self::lock_comment(&mut tx, tenant_id, id).await?;
        let changed = sqlx::query(
            "UPDATE comments SET body = $3, edited_at = $4 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(body)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&changed) != 1 {
            return Err(StoreError::NotFound);
        }
        Self::replace_mentions(&mut tx, id, mentions).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let comment = Self::fetch_comment(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(comment)
    }

    async fn delete_comment(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Comment> {
        let mut tx = self.write.begin().await?;
        Self::lock_comment(&mut tx, tenant_id, id).await?;
        let changed = sqlx::query(
            "UPDATE comments SET body = '', anchor_quote = NULL, anchor_version = NULL, deleted_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&changed) == 1 {
            Self::replace_mentions(&mut tx, id, &[]).await?;
            Self::insert_audit(&mut tx, audit).await?;
        }
        let comment = Self::fetch_comment(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(comment)
    }

    async fn resolve_thread(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        by: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<Comment> {
        let mut tx = self.write.begin().await?;
        Self::lock_comment(&mut tx, tenant_id, id).await?;
        let resolved_at = by.map(|_| audit.occurred_at);
        let changed = sqlx::query(
            "UPDATE comments SET resolved_at = $3, resolved_by = $4 \
             WHERE tenant_id = $1 AND id = $2 AND thread_id IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(resolved_at)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&changed) != 1 {
            return Err(StoreError::Conflict {
                code: "not_a_thread",
                message: "only a thread's first comment resolves or reopens it".into(),
            });
        }
        Self::insert_audit(&mut tx, audit).await?;
        let comment = Self::fetch_comment(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(comment)
    }
}
