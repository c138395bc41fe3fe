//! The engagement inbox: what people write to and about a brand on its
//! connected accounts (mentions of the account, replies to its posts),
//! each stored once per account under the platform's id, and how people
//! work it (open or done, an assignee). Each account's inbox has its own
//! schedule and cursor on the account row, claimed like its followers'
//! reading so replicas read it once per round. Each item may have a
//! suggested reply (drafted by a `reply` job on an agent) and the post
//! that answered it.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, NewJob, NewPost, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::Timestamp;

/// Failed classify jobs after which an item is left unclassified.
pub const CLASSIFY_ATTEMPTS: i64 = 3;
/// Failed reply jobs after which an item is left without a draft (until a
/// person asks again).
pub const REPLY_ATTEMPTS: i64 = 3;
/// Intents a tenant may have answered without a person: never
/// complaints, spam or anything else.
pub const AUTO_REPLY_INTENTS: [&str; 3] = ["praise", "question", "purchase_interest"];

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
    /// The text sealed, for an account whose items an agent screens
    /// first: then `text` is not stored.
    pub sealed: Option<Sealed>,
}

/// An item's labels, as its classify job gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// `positive`, `neutral` or `negative`.
    pub sentiment: String,
    /// -100 (very negative) to 100.
    pub sentiment_score: i64,
    pub intent: String,
    /// `low`, `normal` or `high`.
    pub urgency: String,
    pub language: String,
    pub personal_data: bool,
    pub classified_at: Timestamp,
}

/// An item waiting for a classify job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclassified {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub network: String,
    pub kind: String,
    /// Characters of its text (sealed or not).
    pub chars: i64,
    /// Sealed until an agent screens it: only an agent may classify it.
    pub sealed: bool,
}

/// The text of an item of a classify job: plain, or sealed.
#[derive(Debug, Clone)]
pub enum ItemText {
    Plain(String),
    Sealed { tenant_id: Uuid, sealed: Sealed },
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
    /// The text is held sealed until an agent has screened it (`text` is
    /// empty until then).
    pub sealed: bool,
    /// The text is as the agent's policy left it (identifiers redacted).
    pub redacted: bool,
    pub classification: Option<Classification>,
    /// 3 high, 2 normal (or not classified yet), 1 low.
    pub urgency_rank: i64,
    /// The classify job it waits for, and that job's waiting reason.
    pub classify_job_id: Option<Uuid>,
    pub classify_waiting: Option<String>,
    /// Failed classify jobs so far, and the last one's reason.
    pub classify_attempts: i64,
    pub classify_error: Option<String>,
    /// The lead it is linked to.
    pub lead_id: Option<Uuid>,
    pub reply: ReplyState,
    /// When the collector found it deleted on its platform.
    pub deleted_at: Option<Timestamp>,
}

/// An item's suggested reply and the post that answered it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyState {
    /// The draft, without the mention of the author.
    pub draft: Option<String>,
    /// The documents the draft cites.
    pub sources: Vec<String>,
    /// Why the draft cites no document.
    pub ungrounded: Option<String>,
    pub drafted_at: Option<Timestamp>,
    /// The reply job it waits for, and that job's waiting reason.
    pub job_id: Option<Uuid>,
    pub waiting: Option<String>,
    /// Failed reply jobs so far, and the last one's reason.
    pub attempts: i64,
    pub error: Option<String>,
    /// A person asked for a draft.
    pub requested: bool,
    /// The post that answers it, with its status and link.
    pub post_id: Option<Uuid>,
    pub post_status: Option<String>,
    pub post_url: Option<String>,
    /// The post was made by the auto-reply rules.
    pub auto: bool,
}

/// An item that should get a draft: classified, without one, a job or a
/// reply, and either asked for or (the organisation drafting replies) an
/// open item whose intent calls for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undrafted {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub network: String,
    pub kind: String,
    pub author_handle: String,
    /// The project of the post it answers, if it answers one of ours.
    pub post_project_id: Option<Uuid>,
}

/// A draft the auto-reply rules have not looked at, with what they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoReplyCandidate {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub author_handle: String,
    pub draft: String,
    pub intent: Option<String>,
    pub sentiment: Option<String>,
    pub personal_data: bool,
    pub redacted: bool,
    pub platform_item_id: String,
    pub post_project_id: Option<Uuid>,
    /// The organisation's auto-reply intents, and who set them.
    pub auto_intents: Vec<String>,
    pub set_by: Option<Uuid>,
}

/// What a reply job needs: the item's text (plain, or sealed), the post
/// it answers, its author's name.
#[derive(Debug, Clone)]
pub struct ReplySubject {
    pub text: ItemText,
    pub post_text: Option<String>,
    pub author_name: Option<String>,
}

/// An organisation's inbox settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSettings {
    /// Drafts suggested replies on its own (else only when asked).
    pub draft_replies: bool,
    /// Intents answered without a person (from [`AUTO_REPLY_INTENTS`]).
    pub auto_reply_intents: Vec<String>,
    /// Crisis alerts: the fewest negative items in an hour, and the
    /// z-score against the hour's baseline (hundredths).
    pub crisis_min_count: i64,
    pub crisis_z: i64,
    pub updated_by: Option<Uuid>,
    pub updated_at: Option<Timestamp>,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            draft_replies: true,
            auto_reply_intents: Vec::new(),
            crisis_min_count: 5,
            crisis_z: 300,
            updated_by: None,
            updated_at: None,
        }
    }
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
    pub sentiment: Option<String>,
    pub intent: Option<String>,
    /// Most urgent first (then newest), rather than newest first.
    pub urgent_first: bool,
    /// Items after this one in the list's order: its urgency rank (with
    /// `urgent_first`), time and id.
    pub before: Option<(i64, Timestamp, Uuid)>,
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

/// A change to an item: its status, its assignee, its lead (`Some(None)`
/// clears either).
#[derive(Debug, Clone, Default)]
pub struct InboxChange {
    pub status: Option<String>,
    pub assignee_id: Option<Option<Uuid>>,
    pub lead_id: Option<Option<Uuid>>,
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
    /// Up to `limit` of the account's items posted since `recent`, not
    /// known to be deleted and not looked at since `looked` (never looked
    /// at first): their platform ids.
    async fn inbox_to_check(
        &self,
        account_id: Uuid,
        recent: Timestamp,
        looked: Timestamp,
        limit: i64,
    ) -> Result<Vec<String>>;
    /// Records a look: `present` still on the platform, `gone` deleted
    /// there (marked, text kept). Returns how many were newly marked.
    async fn inbox_checked(
        &self,
        account_id: Uuid,
        present: &[String],
        gone: &[String],
        now: Timestamp,
    ) -> Result<usize>;
    /// Records a failed read and when to try again (shown on the account).
    async fn inbox_failed(&self, account_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()>;
    /// The tenant's connected accounts whose last inbox read failed: the
    /// account's id, handle, network and the failure.
    async fn inbox_errors(&self, tenant_id: Uuid) -> Result<Vec<(Uuid, String, String, String)>>;
    /// The tenant's items that `filter` selects, newest first.
    async fn inbox_items(&self, tenant_id: Uuid, filter: &InboxFilter) -> Result<Vec<InboxItem>>;
    async fn inbox_item(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<InboxItem>>;
    /// Applies `change` with its audit event; `None` if the tenant has no
    /// such item. An assignee must be a member of the tenant, a lead one of
    /// its leads.
    async fn update_inbox_item(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &InboxChange,
        audit: &NewAuditEvent,
    ) -> Result<Option<InboxItem>>;
    /// How many open items the tenant has.
    async fn open_inbox_items(&self, tenant_id: Uuid) -> Result<i64>;
    /// Items with neither labels nor a job, whose retry time has come,
    /// oldest first, at most `limit`.
    async fn unclassified_inbox(&self, now: Timestamp, limit: i64) -> Result<Vec<Unclassified>>;
    /// Queues a classify job for `items` (compare-and-set: only items
    /// still without labels or a job), in one transaction: `false` (and
    /// nothing written) when another replica took any of them.
    async fn start_classification(&self, job: &NewJob, items: &[Uuid]) -> Result<bool>;
    /// The texts of a classify job's items, in the job's order, for the
    /// agent holding the job's current lease; `None` otherwise.
    async fn classify_texts(&self, agent_id: Uuid, job_id: Uuid) -> Result<Option<Vec<ItemText>>>;
    /// The texts of a cloud classify job's items (plain only), in order.
    async fn cloud_classify_texts(&self, job_id: Uuid) -> Result<Option<Vec<String>>>;
    /// Items that should get a draft (see [`Undrafted`]) whose retry time
    /// has come, oldest classified first, at most `limit`.
    async fn undrafted_inbox(&self, now: Timestamp, limit: i64) -> Result<Vec<Undrafted>>;
    /// Queues a reply job for an item (compare-and-set: only while it has
    /// no draft, job or reply), in one transaction: `false` (and nothing
    /// written) when another replica took it.
    async fn start_reply_draft(&self, job: &NewJob, item_id: Uuid) -> Result<bool>;
    /// The item of a reply job, for the agent holding the job's current
    /// lease; `None` otherwise.
    async fn reply_subject(&self, agent_id: Uuid, job_id: Uuid) -> Result<Option<ReplySubject>>;
    /// A person asks for a (new) draft: the old one is dropped and the
    /// item queued; a conflict while a draft is being written, once it is
    /// answered, or before it is classified. `None` if the tenant has no
    /// such item.
    async fn request_reply_draft(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<Option<InboxItem>>;
    /// Stores the post that answers an item and links it (compare-and-set:
    /// only an item not answered yet, and for `auto` one the rules have
    /// not looked at), marking the item done, with their audit events; a
    /// conflict when it was answered already.
    async fn create_reply(
        &self,
        post: &NewPost,
        item_id: Uuid,
        auto: bool,
        audits: &[NewAuditEvent],
    ) -> Result<()>;
    /// Drafts the auto-reply rules have not looked at, at most `limit`.
    async fn auto_reply_due(&self, limit: i64) -> Result<Vec<AutoReplyCandidate>>;
    /// The rules looked at an item's draft and left it to a person.
    async fn auto_reply_checked(&self, item_id: Uuid) -> Result<()>;
    /// The organisation's inbox settings (the defaults when never set).
    async fn inbox_settings(&self, tenant_id: Uuid) -> Result<InboxSettings>;
    /// Saves the organisation's inbox settings with their audit event.
    async fn set_inbox_settings(
        &self,
        tenant_id: Uuid,
        settings: &InboxSettings,
        audit: &NewAuditEvent,
    ) -> Result<()>;
}
