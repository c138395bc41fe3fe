//! The engagement inbox: what people write to and about a brand on its
//! connected accounts (mentions of the account, replies to its posts),
//! each stored once per account under the platform's id, and how people
//! work it (open or done, an assignee). Each account's inbox has its own
//! schedule and cursor on the account row, claimed like its followers'
//! reading so replicas read it once per round.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// An item as collected from a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedItem {
    /// The platform's id of the item (a status, a comment).
    pub platform_item_id: String,
    /// `mention` (names the account) or `reply` (answers one of its posts).
    pub kind: String,
    /// `@name@instance`, `@name`.
    pub author_handle: String,
    pub author_name: Option<String>,
    /// Plain text.
    pub text: String,
    /// The item on the platform.
    pub url: Option<String>,
    /// The platform id it answers, if any.
    pub in_reply_to: Option<String>,
    pub posted_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: Uuid,
    pub account_id: Uuid,
    pub network: String,
    /// The account's handle.
    pub handle: String,
    pub platform_item_id: String,
    pub kind: String,
    pub author_handle: String,
    pub author_name: Option<String>,
    pub text: String,
    pub url: Option<String>,
    /// Our post it answers, when it answers one the product published.
    pub post_id: Option<Uuid>,
    pub in_reply_to: Option<String>,
    /// The listening query that found it (`listening` items).
    pub query_id: Option<Uuid>,
    /// The platform id of the thread's first item we know of.
    pub thread: String,
    pub posted_at: Timestamp,
    pub collected_at: Timestamp,
    /// `open` or `done`.
    pub status: String,
    pub assignee_id: Option<Uuid>,
    pub updated_at: Timestamp,
}

/// Which items a list returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub status: Option<String>,
    pub account_id: Option<Uuid>,
    pub network: Option<String>,
    pub kind: Option<String>,
    pub query_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    /// Only items without an assignee.
    pub unassigned: bool,
    /// One thread of one account (with `account_id`).
    pub thread: Option<String>,
    /// Items posted before this (the next page of a newest-first list).
    pub before: Option<(Timestamp, Uuid)>,
    pub limit: i64,
}

/// A saved search whose finds land in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningQuery {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The account it reads through.
    pub handle: String,
    pub network: String,
    /// `hashtag`.
    pub kind: String,
    /// The hashtag, without `#`.
    pub query: String,
    /// Where its last read stopped.
    pub cursor: Option<String>,
    /// Its last read's failure, if it failed.
    pub error: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewListeningQuery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub query: String,
    pub created_by: Option<Uuid>,
}

/// An account whose inbox is due.
#[derive(Debug, Clone)]
pub struct DueInbox {
    pub account_id: Uuid,
    pub next_at: Option<Timestamp>,
}

/// A change to an item: its status, its assignee (`Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct InboxChange {
    pub status: Option<String>,
    pub assignee_id: Option<Option<Uuid>>,
}

#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Connected accounts, not rate limited, whose inbox is due, at most
    /// `limit`.
    async fn inbox_due(&self, now: Timestamp, limit: i64) -> Result<Vec<DueInbox>>;
    /// Claims an account's inbox round (compare-and-set on its schedule,
    /// moved to `until`): `false` if another replica took it.
    async fn claim_inbox(&self, account_id: Uuid, seen: Option<Timestamp>, until: Timestamp) -> Result<bool>;
    /// Where the account's last read stopped.
    async fn inbox_cursor(&self, account_id: Uuid) -> Result<Option<String>>;
    /// Stores what a read found (an item already stored is left as it
    /// is) and the new cursor, in one transaction: the account's, with its
    /// next time, for its mentions (`query` none); the query's, for what a
    /// listening query found. Each item answering one of the account's
    /// published posts is linked to it; its thread is the thread of the
    /// item it answers when that is stored, else the id it answers, else
    /// its own. Returns how many items were new.
    async fn record_inbox(
        &self,
        account_id: Uuid,
        query: Option<Uuid>,
        items: &[CollectedItem],
        cursor: Option<&str>,
        collected_at: Timestamp,
        next_at: Timestamp,
    ) -> Result<usize>;
    /// Records a listening query's failed read.
    async fn listening_failed(&self, query_id: Uuid, error: &str) -> Result<()>;
    /// Saves a query with its audit event; a conflict if the account
    /// already has it.
    async fn create_listening_query(&self, query: &NewListeningQuery, audit: &NewAuditEvent) -> Result<()>;
    /// The tenant's queries (`account` narrows to one account's).
    async fn listening_queries(&self, tenant_id: Uuid, account: Option<Uuid>) -> Result<Vec<ListeningQuery>>;
    /// Deletes a query with its audit event (its items stay, without
    /// it); `false` if the tenant has no such query.
    async fn delete_listening_query(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool>;
    /// Records a failed read and when to try again (shown on the account).
    async fn inbox_failed(&self, account_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()>;
    /// The tenant's connected accounts whose last inbox read failed: the
    /// account's id, handle, network and the failure.
    async fn inbox_errors(&self, tenant_id: Uuid) -> Result<Vec<(Uuid, String, String, String)>>;
    /// The tenant's items that `filter` selects, newest first.
    async fn inbox_items(&self, tenant_id: Uuid, filter: &InboxFilter) -> Result<Vec<InboxItem>>;
    async fn inbox_item(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<InboxItem>>;
    /// Applies `change` with its audit event; `None` if the tenant has no
    /// such item. An assignee must be a member of the tenant.
    async fn update_inbox_item(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &InboxChange,
        audit: &NewAuditEvent,
    ) -> Result<Option<InboxItem>>;
    /// How many open items the tenant has.
    async fn open_inbox_items(&self, tenant_id: Uuid) -> Result<i64>;
}
