//! Persistence of comments: threads on an activity (optionally anchored to
//! a passage of one content version) or on a scheduled post, the members
//! each comment mentions, edits, deletions and resolved threads.
//!
//! A comment is written with its audit event and the notices of the people
//! it mentions, in one transaction. Every read and change names the tenant,
//! so another tenant's comment is a missing one.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// What a comment is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentSubject {
    Activity(Uuid),
    Post(Uuid),
}

/// A passage of a content version a thread is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The version's number (0 is the generated content).
    pub version: i64,
    pub quote: String,
}

/// A member a comment mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mentioned {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subject: CommentSubject,
    /// The thread's first comment; `None` for a first comment.
    pub thread_id: Option<Uuid>,
    /// `None` once the author's account is deleted, or for an external
    /// reviewer.
    pub author_id: Option<Uuid>,
    /// The member's name, or "address (external)".
    pub author_name: Option<String>,
    /// Empty once deleted.
    pub body: String,
    pub anchor: Option<Anchor>,
    pub mentions: Vec<Mentioned>,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    /// On a thread's first comment.
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewComment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subject: CommentSubject,
    pub thread_id: Option<Uuid>,
    /// A member, or else an external reviewer by address.
    pub author_id: Option<Uuid>,
    pub author_email: Option<String>,
    pub body: String,
    pub anchor: Option<Anchor>,
    /// Members of the tenant (the service checked).
    pub mentions: Vec<Uuid>,
}

/// At most this many comments on one item: a discussion, not a log.
pub const MAX_COMMENTS_PER_ITEM: i64 = 2_000;

#[async_trait]
pub trait CommentStore {
    /// The comments on an item, oldest first (at most
    /// [`MAX_COMMENTS_PER_ITEM`]).
    async fn comments(&self, tenant_id: Uuid, subject: CommentSubject) -> Result<Vec<Comment>>;
    async fn comment(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Comment>>;
    /// Adds a comment; `Conflict` when the item has
    /// [`MAX_COMMENTS_PER_ITEM`] already.
    async fn add_comment(&self, comment: &NewComment, audit: &NewAuditEvent) -> Result<Comment>;
    /// Replaces a comment's text and mentions, unless it was deleted
    /// (`NotFound` then).
    async fn edit_comment(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        body: &str,
        mentions: &[Uuid],
        audit: &NewAuditEvent,
    ) -> Result<Comment>;
    /// Removes a comment's text and mentions; its row stays, so the thread
    /// around it stays readable. Idempotent.
    async fn delete_comment(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Comment>;
    /// Resolves (`by` set) or reopens (`None`) the thread a first comment
    /// starts.
    async fn resolve_thread(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        by: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<Comment>;
}
