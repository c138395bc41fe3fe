//! [`InboxStore`] for [`SqlStore`]: inbox items, stored once per account
//! and platform id, each account's inbox schedule and cursor, the items'
//! labels and suggested replies, and the organisation's inbox settings.

use super::*;
use marketer_protocol::inbox::{ClassifyItem, Urgency};

use crate::cloud::crypto::Sealed;
use crate::store::{
    AutoReplyCandidate, CLASSIFY_ATTEMPTS, Classification, CollectedItem, DueInbox, InboxChange, InboxFilter,
    InboxItem, InboxSettings, InboxStore, ItemText, ListeningQuery, NewJob, NewListeningQuery, NewPost,
    REPLY_ATTEMPTS, ReplyState, ReplySubject, Unclassified, Undrafted,
};

#[derive(FromRow)]
struct ItemRow {
    id: Uuid,
    account_id: Uuid,
    network: String,
    handle: String,
    platform_item_id: String,
    kind: String,
    author_handle: String,
    author_name: Option<String>,
    text: String,
    url: Option<String>,
    post_id: Option<Uuid>,
    in_reply_to: Option<String>,
    query_id: Option<Uuid>,
    thread: String,
    posted_at: Timestamp,
    collected_at: Timestamp,
    status: String,
    assignee_id: Option<Uuid>,
    updated_at: Timestamp,
    sealed: bool,
    redacted: bool,
    sentiment: Option<String>,
    sentiment_score: Option<i64>,
    intent: Option<String>,
    urgency: Option<String>,
    language: Option<String>,
    personal_data: Option<bool>,
    classified_at: Option<Timestamp>,
    urgency_rank: i64,
    classify_job_id: Option<Uuid>,
    job_status: Option<String>,
    job_waiting: Option<String>,
    classify_attempts: i64,
    classify_error: Option<String>,
    lead_id: Option<Uuid>,
    reply_draft: Option<String>,
    reply_sources: Option<String>,
    reply_ungrounded: Option<String>,
    reply_drafted_at: Option<Timestamp>,
    reply_job_id: Option<Uuid>,
    reply_job_status: Option<String>,
    reply_job_waiting: Option<String>,
    reply_attempts: i64,
    reply_error: Option<String>,
    reply_requested: bool,
    reply_post_id: Option<Uuid>,
    reply_post_status: Option<String>,
    reply_post_url: Option<String>,
    reply_auto: bool,
    deleted_at: Option<Timestamp>,
}

/// A queued job's waiting reason (a job not started yet says why; one
/// running does not wait).
fn waiting(status: Option<&str>, reason: Option<String>) -> Option<String> {
    match status {
        Some("queued") => Some(reason.unwrap_or_else(|| "waiting for one of your agents to take it".into())),
        _ => None,
    }
}

impl From<ItemRow> for InboxItem {
    fn from(r: ItemRow) -> Self {
        InboxItem {
            id: r.id,
            account_id: r.account_id,
            network: r.network,
            handle: r.handle,
            platform_item_id: r.platform_item_id,
            kind: r.kind,
            author_handle: r.author_handle,
            author_name: r.author_name,
            text: r.text,
            url: r.url,
            post_id: r.post_id,
            in_reply_to: r.in_reply_to,
            query_id: r.query_id,
            thread: r.thread,
            posted_at: r.posted_at,
            collected_at: r.collected_at,
            status: r.status,
            assignee_id: r.assignee_id,
            updated_at: r.updated_at,
            sealed: r.sealed,
            redacted: r.redacted,
            classification: match (r.sentiment, r.intent, r.urgency, r.classified_at) {
                (Some(sentiment), Some(intent), Some(urgency), Some(classified_at)) => Some(Classification {
                    sentiment,
                    sentiment_score: r.sentiment_score.unwrap_or(0),
                    intent,
                    urgency,
                    language: r.language.unwrap_or_else(|| "und".into()),
                    personal_data: r.personal_data.unwrap_or(false),
                    classified_at,
                }),
                _ => None,
            },
            urgency_rank: r.urgency_rank,
            classify_job_id: r.classify_job_id,
            classify_waiting: waiting(r.job_status.as_deref(), r.job_waiting),
            classify_attempts: r.classify_attempts,
            classify_error: r.classify_error,
            lead_id: r.lead_id,
            reply: ReplyState {
                draft: r.reply_draft,
                sources: r.reply_sources.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
                ungrounded: r.reply_ungrounded,
                drafted_at: r.reply_drafted_at,
                job_id: r.reply_job_id,
                waiting: waiting(r.reply_job_status.as_deref(), r.reply_job_waiting),
                attempts: r.reply_attempts,
                error: r.reply_error,
                requested: r.reply_requested,
                post_id: r.reply_post_id,
                post_status: r.reply_post_status,
                post_url: r.reply_post_url,
                auto: r.reply_auto,
            },
            deleted_at: r.deleted_at,
        }
    }
}

const ITEM_SELECT: &str = "SELECT i.id, i.account_id, a.platform AS network, a.handle, i.platform_item_id, \
     i.kind, i.author_handle, i.author_name, i.text, i.url, i.post_id, i.in_reply_to, i.query_id, i.thread, i.posted_at, \
     i.collected_at, i.status, i.assignee_id, i.updated_at, (i.sealed_text IS NOT NULL) AS sealed, i.redacted, \
     i.sentiment, i.sentiment_score, i.intent, i.urgency, i.language, i.personal_data, i.classified_at, \
     i.urgency_rank, i.classify_job_id, j.status AS job_status, j.waiting_reason AS job_waiting, \
     i.classify_attempts, i.classify_error, i.lead_id, i.reply_draft, i.reply_sources, i.reply_ungrounded, \
     i.reply_drafted_at, i.reply_job_id, rj.status AS reply_job_status, rj.waiting_reason AS reply_job_waiting, \
     i.reply_attempts, i.reply_error, i.reply_requested, i.reply_post_id, rp.status AS reply_post_status, \
     rp.platform_url AS reply_post_url, (rp.id IS NOT NULL AND rp.created_by IS NULL) AS reply_auto, \
     i.deleted_at FROM inbox_items i JOIN social_accounts a ON a.id = i.account_id \
     LEFT JOIN jobs j ON j.id = i.classify_job_id \
     LEFT JOIN jobs rj ON rj.id = i.reply_job_id \
     LEFT JOIN social_posts rp ON rp.id = i.reply_post_id";

/// The wait after a failed classify (or reply) job before the item is
/// tried again.
const CLASSIFY_RETRY: time::Duration = time::Duration::minutes(10);

/// The longest text kept of an item (platforms allow a few thousand
/// characters; this bounds what one hostile item can store).
const MAX_TEXT: usize = 10_000;

#[async_trait]
impl<DB> InboxStore for SqlStore<DB>
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
    async fn inbox_due(&self, now: Timestamp, limit: i64) -> Result<Vec<DueInbox>> {
        let rows: Vec<(Uuid, Option<Timestamp>)> = sqlx::query_as(
            "SELECT a.id, a.inbox_next_at FROM social_accounts a \
             WHERE a.disconnected_at IS NULL AND a.status = 'connected' \
             AND (a.inbox_next_at IS NULL OR a.inbox_next_at <= $1) \
             AND (a.rate_limited_until IS NULL OR a.rate_limited_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM platform_limits l WHERE l.platform = a.platform AND l.limited_until > $1) \
             ORDER BY a.inbox_next_at IS NOT NULL, a.inbox_next_at, a.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(account_id, next_at)| DueInbox { account_id, next_at }).collect())
    }

    async fn claim_inbox(&self, account_id: Uuid, seen: Option<Timestamp>, until: Timestamp) -> Result<bool> {
        let r =
            match seen {
                Some(seen) => {
                    sqlx::query(
                        "UPDATE social_accounts SET inbox_next_at = $3 WHERE id = $1 AND inbox_next_at = $2",
                    )
                    .bind(account_id)
                    .bind(seen)
                    .bind(until)
                    .execute(&self.write)
                    .await?
                }
                None => sqlx::query(
                    "UPDATE social_accounts SET inbox_next_at = $2 WHERE id = $1 AND inbox_next_at IS NULL",
                )
                .bind(account_id)
                .bind(until)
                .execute(&self.write)
                .await?,
            };
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn inbox_cursor(&self, account_id: Uuid) -> Result<Option<String>> {
        let cursor: Option<Option<String>> =
            sqlx::query_scalar("SELECT inbox_cursor FROM social_accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(cursor.flatten())
    }

    async fn record_inbox(
        &self,
        account_id: Uuid,
        query: Option<Uuid>,
        items: &[CollectedItem],
        cursor: Option<&str>,
        collected_at: Timestamp,
        next_at: Timestamp,
    ) -> Result<usize> {
        let mut tx = self.write.begin().await?;
        let tenant_id: Option<Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM social_accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(tenant_id) = tenant_id else { return Ok(0) };
        let mut new = 0;
        // Oldest first, so an answer finds the thread of what it answers.
        let mut ordered: Vec<&CollectedItem> = items.iter().collect();
        ordered
            .sort_by(|a, b| a.posted_at.cmp(&b.posted_at).then(a.platform_item_id.cmp(&b.platform_item_id)));
        for item in ordered {
            let (post_id, thread) = match &item.in_reply_to {
                Some(parent) => {
                    let post_id: Option<Uuid> = sqlx::query_scalar(
                        "SELECT id FROM social_posts WHERE account_id = $1 AND platform_post_id = $2",
                    )
                    .bind(account_id)
                    .bind(parent.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let parent_item: Option<(Option<Uuid>, String)> = sqlx::query_as(
                        "SELECT post_id, thread FROM inbox_items WHERE account_id = $1 AND platform_item_id = $2",
                    )
                    .bind(account_id)
                    .bind(parent.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match (post_id, parent_item) {
                        (Some(post), _) => (Some(post), parent.clone()),
                        (None, Some((post, thread))) => (post, thread),
                        (None, None) => (None, parent.clone()),
                    }
                }
                None => (None, item.platform_item_id.clone()),
            };
            // A sealed item's text is not stored until an agent screened it.
            let text: String = if item.sealed.is_some() {
                String::new()
            } else {
                item.text.chars().take(MAX_TEXT).collect()
            };
            let r = sqlx::query(
                "INSERT INTO inbox_items (id, tenant_id, account_id, platform_item_id, kind, author_handle, \
                 author_name, text, url, post_id, in_reply_to, thread, posted_at, collected_at, status, updated_at, \
                 query_id, sealed_text, sealed_nonce) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'open', $14, $15, $16, $17) \
                 ON CONFLICT (account_id, platform_item_id) DO NOTHING",
            )
            .bind(crate::domain::new_id())
            .bind(tenant_id)
            .bind(account_id)
            .bind(item.platform_item_id.clone())
            .bind(item.kind.clone())
            .bind(item.author_handle.clone())
            .bind(item.author_name.clone())
            .bind(text)
            .bind(item.url.clone())
            .bind(post_id)
            .bind(item.in_reply_to.clone())
            .bind(thread)
            .bind(item.posted_at)
            .bind(collected_at)
            .bind(query)
            .bind(item.sealed.as_ref().map(|s| s.ciphertext.clone()))
            .bind(item.sealed.as_ref().map(|s| s.nonce.clone()))
            .execute(&mut *tx)
            .await?;
            new += DB::rows_affected(&r) as usize;
        }
        match query {
            None => {
                sqlx::query(
                    "UPDATE social_accounts SET inbox_cursor = COALESCE($2, inbox_cursor), inbox_next_at = $3, \
                     inbox_error = NULL WHERE id = $1",
                )
                .bind(account_id)
                .bind(cursor.map(str::to_owned))
                .bind(next_at)
                .execute(&mut *tx)
                .await?;
            }
            Some(query) => {
                sqlx::query(
                    "UPDATE listening_queries SET cursor = COALESCE($2, cursor), error = NULL WHERE id = $1",
                )
                .bind(query)
                .bind(cursor.map(str::to_owned))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn inbox_to_check(
        &self,
        account_id: Uuid,
        recent: Timestamp,
        looked: Timestamp,
        limit: i64,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT platform_item_id FROM inbox_items WHERE account_id = $1 AND deleted_at IS NULL \
             AND posted_at >= $2 AND (checked_at IS NULL OR checked_at < $3) \
             ORDER BY checked_at IS NOT NULL, checked_at, posted_at DESC LIMIT $4",
        )
        .bind(account_id)
        .bind(recent)
        .bind(looked)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    async fn inbox_checked(
        &self,
        account_id: Uuid,
        present: &[String],
        gone: &[String],
        now: Timestamp,
    ) -> Result<usize> {
        let mut tx = self.write.begin().await?;
        for id in present {
            sqlx::query(
                "UPDATE inbox_items SET checked_at = $3 WHERE account_id = $1 AND platform_item_id = $2",
            )
            .bind(account_id)
            .bind(id.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut marked = 0;
        for id in gone {
            let r = sqlx::query(
                "UPDATE inbox_items SET checked_at = $3, deleted_at = $3, updated_at = $3 \
                 WHERE account_id = $1 AND platform_item_id = $2 AND deleted_at IS NULL",
            )
            .bind(account_id)
            .bind(id.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            marked += DB::rows_affected(&r) as usize;
        }
        tx.commit().await?;
        Ok(marked)
    }

    async fn inbox_failed(&self, account_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE social_accounts SET inbox_next_at = $2, inbox_error = $3 WHERE id = $1")
            .bind(account_id)
            .bind(retry_at)
            .bind(error)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn inbox_errors(&self, tenant_id: Uuid) -> Result<Vec<(Uuid, String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, handle, platform, inbox_error FROM social_accounts \
             WHERE tenant_id = $1 AND disconnected_at IS NULL AND inbox_error IS NOT NULL ORDER BY handle, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn inbox_items(&self, tenant_id: Uuid, f: &InboxFilter) -> Result<Vec<InboxItem>> {
        let (before_rank, before_at, before_id) =
            f.before.map_or((None, None, None), |(rank, at, id)| (Some(rank), Some(at), Some(id)));
        // Newest first, or by urgency then newest; the page after an item
        // is what sorts after it.
        let (after, order) = if f.urgent_first {
            (
                " AND ($9 IS NULL OR i.urgency_rank < $13 OR (i.urgency_rank = $13 AND (i.posted_at < $9 \
                 OR (i.posted_at = $9 AND i.id < $10)))) ",
                " ORDER BY i.urgency_rank DESC, i.posted_at DESC, i.id DESC LIMIT $11",
            )
        } else {
            (
                " AND ($9 IS NULL OR i.posted_at < $9 OR (i.posted_at = $9 AND i.id < $10)) AND ($13 IS NULL OR TRUE) ",
                " ORDER BY i.posted_at DESC, i.id DESC LIMIT $11",
            )
        };
        let rows: Vec<ItemRow> = sqlx::query_as(sql(&[
            ITEM_SELECT,
            " WHERE i.tenant_id = $1 AND ($2 IS NULL OR i.status = $2) AND ($3 IS NULL OR i.account_id = $3) \
             AND ($4 IS NULL OR a.platform = $4) AND ($5 IS NULL OR i.kind = $5) \
             AND ($6 IS NULL OR i.assignee_id = $6) AND ($7 = FALSE OR i.assignee_id IS NULL) \
             AND ($8 IS NULL OR i.thread = $8) \
             AND ($12 IS NULL OR i.query_id = $12) \
             AND ($14 IS NULL OR i.sentiment = $14) AND ($15 IS NULL OR i.intent = $15)",
            after,
            order,
        ]))
        .bind(tenant_id)
        .bind(f.status.clone())
        .bind(f.account_id)
        .bind(f.network.clone())
        .bind(f.kind.clone())
        .bind(f.assignee_id)
        .bind(f.unassigned)
        .bind(f.thread.clone())
        .bind(before_at)
        .bind(before_id)
        .bind(f.limit)
        .bind(f.query_id)
        .bind(before_rank)
        .bind(f.sentiment.clone())
        .bind(f.intent.clone())
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(InboxItem::from).collect())
    }

    async fn inbox_item(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<InboxItem>> {
        let row: Option<ItemRow> =
            sqlx::query_as(sql(&[ITEM_SELECT, " WHERE i.tenant_id = $1 AND i.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(InboxItem::from))
    }

    async fn update_inbox_item(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &InboxChange,
        audit: &NewAuditEvent,
    ) -> Result<Option<InboxItem>> {
        let mut tx = self.write.begin().await?;
        if let Some(Some(assignee)) = change.assignee_id {
            let member: Option<Uuid> =
                sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant_id)
                    .bind(assignee)
                    .fetch_optional(&mut *tx)
                    .await?;
            if member.is_none() {
                return Err(StoreError::Invalid {
                    field: "assignee_id",
                    message: "no member of this organisation has this id".into(),
                });
            }
        }
        if let Some(Some(lead)) = change.lead_id {
            let found: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(lead)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::Invalid {
                    field: "lead_id",
                    message: "no lead of this organisation has this id".into(),
                });
            }
        }
        let (set_assignee, assignee) = match change.assignee_id {
            Some(a) => (true, a),
            None => (false, None),
        };
        let (set_lead, lead) = match change.lead_id {
            Some(l) => (true, l),
            None => (false, None),
        };
        let r = sqlx::query(
            "UPDATE inbox_items SET status = COALESCE($3, status), \
             assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END, updated_at = $6, \
             lead_id = CASE WHEN $7 THEN $8 ELSE lead_id END \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(change.status.clone())
        .bind(set_assignee)
        .bind(assignee)
        .bind(audit.occurred_at)
        .bind(set_lead)
        .bind(lead)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(None);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        self.inbox_item(tenant_id, id).await
    }

    async fn open_inbox_items(&self, tenant_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM inbox_items WHERE tenant_id = $1 AND status = 'open'")
            .bind(tenant_id)
            .fetch_one(&self.read)
            .await?)
    }

    async fn unclassified_inbox(&self, now: Timestamp, limit: i64) -> Result<Vec<Unclassified>> {
        let rows: Vec<(Uuid, Uuid, Uuid, String, String, i64, bool)> = sqlx::query_as(
            "SELECT i.id, i.tenant_id, i.account_id, a.platform, i.kind, \
             CAST(COALESCE(LENGTH(i.sealed_text), LENGTH(i.text)) AS BIGINT), (i.sealed_text IS NOT NULL) \
             FROM inbox_items i JOIN social_accounts a ON a.id = i.account_id \
             WHERE i.classified_at IS NULL AND i.classify_job_id IS NULL AND i.classify_attempts < $2 \
             AND (i.classify_retry_at IS NULL OR i.classify_retry_at <= $1) \
             ORDER BY i.collected_at, i.id LIMIT $3",
        )
        .bind(now)
        .bind(CLASSIFY_ATTEMPTS)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, account_id, network, kind, chars, sealed)| Unclassified {
                id,
                tenant_id,
                account_id,
                network,
                kind,
                chars,
                sealed,
            })
            .collect())
    }

    async fn start_classification(&self, job: &NewJob, items: &[Uuid]) -> Result<bool> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await?;
        Self::insert_job(&mut tx, job, now).await?;
        for id in items {
            let r = sqlx::query(
                "UPDATE inbox_items SET classify_job_id = $2 \
                 WHERE id = $1 AND tenant_id = $3 AND classify_job_id IS NULL AND classified_at IS NULL",
            )
            .bind(*id)
            .bind(job.id)
            .bind(job.tenant_id)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&r) != 1 {
                // Another replica queued it: this job is not needed.
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn classify_texts(&self, agent_id: Uuid, job_id: Uuid) -> Result<Option<Vec<ItemText>>> {
        let spec: Option<String> = sqlx::query_scalar(
            "SELECT spec FROM jobs WHERE id = $1 AND agent_id = $2 AND status IN ('assigned', 'running')",
        )
        .bind(job_id)
        .bind(agent_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(spec) = spec else { return Ok(None) };
        let Ok(JobSpec::Classify { items, .. }) = serde_json::from_str::<JobSpec>(&spec) else {
            return Ok(None);
        };
        self.texts_of(job_id, &items).await.map(Some)
    }

    async fn cloud_classify_texts(&self, job_id: Uuid) -> Result<Option<Vec<String>>> {
        let spec: Option<String> =
            sqlx::query_scalar("SELECT spec FROM jobs WHERE id = $1 AND route = 'cloud'")
                .bind(job_id)
                .fetch_optional(&self.read)
                .await?;
        let Some(spec) = spec else { return Ok(None) };
        let Ok(JobSpec::Classify { items, .. }) = serde_json::from_str::<JobSpec>(&spec) else {
            return Ok(None);
        };
        let texts = self.texts_of(job_id, &items).await?;
        // The cloud never gets a sealed text.
        Ok(Some(
            texts
                .into_iter()
                .map(|t| match t {
                    ItemText::Plain(text) => text,
                    ItemText::Sealed { .. } => String::new(),
                })
                .collect(),
        ))
    }

    async fn undrafted_inbox(&self, now: Timestamp, limit: i64) -> Result<Vec<Undrafted>> {
        let rows: Vec<(Uuid, Uuid, Uuid, String, String, String, Option<Uuid>)> = sqlx::query_as(
            "SELECT i.id, i.tenant_id, i.account_id, a.platform, i.kind, i.author_handle, p.project_id \
             FROM inbox_items i JOIN social_accounts a ON a.id = i.account_id \
             LEFT JOIN social_posts p ON p.id = i.post_id \
             LEFT JOIN inbox_settings s ON s.tenant_id = i.tenant_id \
             WHERE i.classified_at IS NOT NULL AND i.reply_draft IS NULL AND i.reply_job_id IS NULL \
             AND i.reply_post_id IS NULL AND i.reply_attempts < $2 AND i.deleted_at IS NULL \
             AND (i.reply_retry_at IS NULL OR i.reply_retry_at <= $1) \
             AND (i.reply_requested OR (i.status = 'open' AND COALESCE(s.draft_replies, TRUE) \
                  AND i.intent IN ('question', 'complaint', 'praise', 'purchase_interest'))) \
             ORDER BY i.classified_at, i.id LIMIT $3",
        )
        .bind(now)
        .bind(REPLY_ATTEMPTS)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, account_id, network, kind, author_handle, post_project_id)| Undrafted {
                id,
                tenant_id,
                account_id,
                network,
                kind,
                author_handle,
                post_project_id,
            })
            .collect())
    }

    async fn start_reply_draft(&self, job: &NewJob, item_id: Uuid) -> Result<bool> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await?;
        Self::insert_job(&mut tx, job, now).await?;
        let r = sqlx::query(
            "UPDATE inbox_items SET reply_job_id = $2 \
             WHERE id = $1 AND tenant_id = $3 AND reply_job_id IS NULL AND reply_draft IS NULL \
             AND reply_post_id IS NULL",
        )
        .bind(item_id)
        .bind(job.id)
        .bind(job.tenant_id)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            // Another replica queued it: this job is not needed.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn reply_subject(&self, agent_id: Uuid, job_id: Uuid) -> Result<Option<ReplySubject>> {
        let spec: Option<String> = sqlx::query_scalar(
            "SELECT spec FROM jobs WHERE id = $1 AND agent_id = $2 AND status IN ('assigned', 'running')",
        )
        .bind(job_id)
        .bind(agent_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(Ok(JobSpec::Reply { reply, .. })) = spec.map(|s| serde_json::from_str::<JobSpec>(&s)) else {
            return Ok(None);
        };
        type Row = (Uuid, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>, Option<String>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT i.tenant_id, i.text, i.sealed_text, i.sealed_nonce, p.text, i.author_name \
             FROM inbox_items i LEFT JOIN social_posts p ON p.id = i.post_id \
             WHERE i.id = $1 AND i.reply_job_id = $2",
        )
        .bind(reply.item_id)
        .bind(job_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(tenant_id, text, ciphertext, nonce, post_text, author_name)| ReplySubject {
            text: match (ciphertext, nonce) {
                (Some(ciphertext), Some(nonce)) => {
                    ItemText::Sealed { tenant_id, sealed: Sealed { ciphertext, nonce } }
                }
                _ => ItemText::Plain(text),
            },
            post_text,
            author_name,
        }))
    }

    async fn request_reply_draft(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<Option<InboxItem>> {
        let mut tx = self.write.begin().await?;
        let row: Option<(Option<Timestamp>, Option<Uuid>, Option<Uuid>)> = sqlx::query_as(
            "SELECT classified_at, reply_job_id, reply_post_id FROM inbox_items WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((classified_at, job, post)) = row else { return Ok(None) };
        let conflict = |code, message: &str| StoreError::Conflict { code, message: message.into() };
        if post.is_some() {
            return Err(conflict("inbox_item_answered", "this item was answered already"));
        }
        if job.is_some() {
            return Err(conflict("reply_drafting", "a reply is being drafted for this item; wait for it"));
        }
        if classified_at.is_none() {
            return Err(conflict(
                "inbox_item_not_classified",
                "this item is not classified yet; a reply is drafted once an agent has read it",
            ));
        }
        let r = sqlx::query(
            "UPDATE inbox_items SET reply_draft = NULL, reply_sources = NULL, reply_ungrounded = NULL, \
             reply_drafted_at = NULL, reply_attempts = 0, reply_retry_at = NULL, reply_error = NULL, \
             reply_requested = TRUE, auto_reply_checked = TRUE, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND reply_job_id IS NULL AND reply_post_id IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Err(conflict("reply_drafting", "a reply is being drafted for this item; wait for it"));
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        self.inbox_item(tenant_id, id).await
    }

    async fn create_reply(
        &self,
        post: &NewPost,
        item_id: Uuid,
        auto: bool,
        audits: &[NewAuditEvent],
    ) -> Result<()> {
        let now = audits.first().map_or_else(Timestamp::now, |a| a.occurred_at);
        let mut tx = self.write.begin().await?;
        Self::insert_post(&mut tx, post, now).await?;
        let r = sqlx::query(
            "UPDATE inbox_items SET reply_post_id = $3, status = 'done', auto_reply_checked = TRUE, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND reply_post_id IS NULL AND deleted_at IS NULL \
             AND ($5 = FALSE OR auto_reply_checked = FALSE)",
        )
        .bind(post.tenant_id)
        .bind(item_id)
        .bind(post.id)
        .bind(now)
        .bind(auto)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Err(StoreError::Conflict {
                code: "inbox_item_answered",
                message: "this item was answered already, or was deleted on its platform".into(),
            });
        }
        for audit in audits {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn auto_reply_due(&self, limit: i64) -> Result<Vec<AutoReplyCandidate>> {
        type Row = (
            Uuid,
            Uuid,
            Uuid,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<bool>,
            bool,
            String,
            Option<Uuid>,
            Option<String>,
            Option<Uuid>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT i.id, i.tenant_id, i.account_id, i.author_handle, i.reply_draft, i.intent, i.sentiment, \
             i.personal_data, i.redacted, i.platform_item_id, p.project_id, s.auto_reply_intents, s.updated_by \
             FROM inbox_items i LEFT JOIN social_posts p ON p.id = i.post_id \
             LEFT JOIN inbox_settings s ON s.tenant_id = i.tenant_id \
             WHERE i.reply_draft IS NOT NULL AND i.auto_reply_checked = FALSE AND i.reply_post_id IS NULL \
             AND i.deleted_at IS NULL ORDER BY i.reply_drafted_at, i.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AutoReplyCandidate {
                id: r.0,
                tenant_id: r.1,
                account_id: r.2,
                author_handle: r.3,
                draft: r.4,
                intent: r.5,
                sentiment: r.6,
                personal_data: r.7.unwrap_or(false),
                redacted: r.8,
                platform_item_id: r.9,
                post_project_id: r.10,
                auto_intents: split_intents(r.11.as_deref().unwrap_or("")),
                set_by: r.12,
            })
            .collect())
    }

    async fn auto_reply_checked(&self, item_id: Uuid) -> Result<()> {
        sqlx::query("UPDATE inbox_items SET auto_reply_checked = TRUE WHERE id = $1")
            .bind(item_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn inbox_settings(&self, tenant_id: Uuid) -> Result<InboxSettings> {
        let row: Option<(bool, String, i64, i64, Option<Uuid>, Timestamp)> = sqlx::query_as(
            "SELECT draft_replies, auto_reply_intents, crisis_min_count, crisis_z_hundredths, updated_by, updated_at \
             FROM inbox_settings WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some((draft_replies, intents, crisis_min_count, crisis_z, updated_by, updated_at)) => {
                InboxSettings {
                    draft_replies,
                    auto_reply_intents: split_intents(&intents),
                    crisis_min_count,
                    crisis_z,
                    updated_by,
                    updated_at: Some(updated_at),
                }
            }
            None => InboxSettings::default(),
        })
    }

    async fn set_inbox_settings(
        &self,
        tenant_id: Uuid,
        settings: &InboxSettings,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO inbox_settings (tenant_id, draft_replies, auto_reply_intents, updated_by, updated_at, \
             crisis_min_count, crisis_z_hundredths) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET draft_replies = $2, auto_reply_intents = $3, updated_by = $4, \
             updated_at = $5, crisis_min_count = $6, crisis_z_hundredths = $7",
        )
        .bind(tenant_id)
        .bind(settings.draft_replies)
        .bind(settings.auto_reply_intents.join(","))
        .bind(settings.updated_by)
        .bind(audit.occurred_at)
        .bind(settings.crisis_min_count)
        .bind(settings.crisis_z)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn listening_failed(&self, query_id: Uuid, error: &str) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE listening_queries SET error = $2 WHERE id = $1")
            .bind(query_id)
            .bind(error)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn create_listening_query(&self, q: &NewListeningQuery, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if Self::fetch_account(&mut tx, q.tenant_id, q.account_id).await?.is_none() {
            return Err(StoreError::Invalid {
                field: "account_id",
                message: "no connected account of this organisation has this id".into(),
            });
        }
        let r = sqlx::query(
            "INSERT INTO listening_queries (id, tenant_id, account_id, kind, query, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account_id, kind, query) DO NOTHING",
        )
        .bind(q.id)
        .bind(q.tenant_id)
        .bind(q.account_id)
        .bind(q.kind.clone())
        .bind(q.query.clone())
        .bind(q.created_by)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Err(StoreError::Conflict {
                code: "listening_query_exists",
                message: format!("this account already listens for #{}", q.query),
            });
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn listening_queries(&self, tenant_id: Uuid, account: Option<Uuid>) -> Result<Vec<ListeningQuery>> {
        let rows: Vec<(Uuid, Uuid, String, String, String, String, Option<String>, Option<String>, Timestamp)> =
            sqlx::query_as(
                "SELECT q.id, q.account_id, a.handle, a.platform, q.kind, q.query, q.cursor, q.error, q.created_at \
                 FROM listening_queries q JOIN social_accounts a ON a.id = q.account_id \
                 WHERE q.tenant_id = $1 AND ($2 IS NULL OR q.account_id = $2) ORDER BY q.query, q.id",
            )
            .bind(tenant_id)
            .bind(account)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, account_id, handle, network, kind, query, cursor, error, created_at)| ListeningQuery {
                id,
                account_id,
                handle,
                network,
                kind,
                query,
                cursor,
                error,
                created_at,
            })
            .collect())
    }

    async fn delete_listening_query(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query("DELETE FROM listening_queries WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
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
    /// The texts of a classify job's items in the job's order (an item
    /// gone since is an empty text).
    async fn texts_of(&self, job_id: Uuid, items: &[ClassifyItem]) -> Result<Vec<ItemText>> {
        type Row = (Uuid, Uuid, String, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, text, sealed_text, sealed_nonce FROM inbox_items WHERE classify_job_id = $1",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        let mut by_id: std::collections::HashMap<Uuid, ItemText> = rows
            .into_iter()
            .map(|(id, tenant_id, text, ciphertext, nonce)| {
                let text = match (ciphertext, nonce) {
                    (Some(ciphertext), Some(nonce)) => {
                        ItemText::Sealed { tenant_id, sealed: Sealed { ciphertext, nonce } }
                    }
                    _ => ItemText::Plain(text),
                };
                (id, text)
            })
            .collect();
        Ok(items.iter().map(|i| by_id.remove(&i.id).unwrap_or(ItemText::Plain(String::new()))).collect())
    }

    /// A failed classify or reply job (`kind`) frees its items to be tried
    /// again later, the reason kept (`not_understood` when the agent
    /// answered something else).
    async fn inbox_job_failed(
        conn: &mut DB::Connection,
        job: &Job,
        kind: &'static str,
        error: Option<&JobError>,
        output: Option<&JobOutput>,
        not_understood: &str,
        now: Timestamp,
    ) -> Result<()> {
        let reason = match (error, output) {
            (Some(e), _) => e.message.clone(),
            (None, Some(_)) => not_understood.to_owned(),
            (None, None) => "the job was cancelled".to_owned(),
        };
        let reason: String = reason.chars().take(500).collect();
        // `kind` is one of two constants, never input.
        let sql = format!(
            "UPDATE inbox_items SET {kind}_job_id = NULL, {kind}_attempts = {kind}_attempts + 1, \
             {kind}_error = $2, {kind}_retry_at = $3 WHERE {kind}_job_id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job.id)
            .bind(reason)
            .bind(now + CLASSIFY_RETRY)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// What a reply job's end means for its item, in the job's
    /// transaction: the draft, the documents it cites, or why it cites
    /// none; otherwise the item is free again, to be tried later with the
    /// reason kept.
    pub(super) async fn reply_ended(
        conn: &mut DB::Connection,
        job: &Job,
        output: Option<&JobOutput>,
        error: Option<&JobError>,
        now: Timestamp,
    ) -> Result<()> {
        let JobSpec::Reply { reply, .. } = &job.spec else { return Ok(()) };
        let Some(JobOutput::ReplyDrafted { draft }) = output.filter(|_| error.is_none()) else {
            return Self::inbox_job_failed(
                conn,
                job,
                "reply",
                error,
                output,
                "the agent's answer was not a reply",
                now,
            )
            .await;
        };
        let text: String = draft.text.chars().take(MAX_TEXT).collect();
        let sources: Vec<String> =
            draft.sources.iter().take(10).map(|s| s.chars().take(300).collect()).collect();
        let ungrounded: Option<String> = draft.ungrounded.as_ref().map(|u| u.chars().take(500).collect());
        sqlx::query(
            "UPDATE inbox_items SET reply_draft = $3, reply_sources = $4, reply_ungrounded = $5, \
             reply_drafted_at = $6, reply_job_id = NULL, reply_error = NULL \
             WHERE id = $1 AND reply_job_id = $2",
        )
        .bind(reply.item_id)
        .bind(job.id)
        .bind(text)
        .bind(serde_json::to_string(&sources).unwrap_or_else(|_| "[]".into()))
        .bind(ungrounded)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// What a classify job's end means for its items, in the job's
    /// transaction: labels (and the text as the agent's policy left it)
    /// when it succeeded with one label per item; otherwise the items are
    /// free again, to be tried later with the reason kept.
    pub(super) async fn classify_ended(
        conn: &mut DB::Connection,
        job: &Job,
        output: Option<&JobOutput>,
        error: Option<&JobError>,
        now: Timestamp,
    ) -> Result<()> {
        let JobSpec::Classify { items, .. } = &job.spec else { return Ok(()) };
        let labels = match output {
            Some(JobOutput::Classified { items: labels }) if labels.len() == items.len() => Some(labels),
            _ => None,
        };
        let Some(labels) = labels else {
            return Self::inbox_job_failed(
                conn,
                job,
                "classify",
                error,
                output,
                "the agent's answer did not label every item",
                now,
            )
            .await;
        };
        for (item, l) in items.iter().zip(labels) {
            let text: Option<String> = l.text.as_ref().map(|t| t.chars().take(MAX_TEXT).collect());
            let rank: i64 = match l.urgency {
                Urgency::High => 3,
                Urgency::Normal => 2,
                Urgency::Low => 1,
            };
            let score = (f64::from(l.sentiment_score).clamp(-1.0, 1.0) * 100.0).round() as i64;
            let language: String = l.language.chars().take(8).collect();
            sqlx::query(
                "UPDATE inbox_items SET sentiment = $3, sentiment_score = $4, intent = $5, urgency = $6, \
                 urgency_rank = $7, language = $8, personal_data = $9, classified_at = $10, classify_job_id = NULL, \
                 classify_error = NULL, \
                 text = COALESCE($11, text), redacted = CASE WHEN $11 IS NULL THEN redacted ELSE $12 END, \
                 sealed_text = CASE WHEN $11 IS NULL THEN sealed_text ELSE NULL END, \
                 sealed_nonce = CASE WHEN $11 IS NULL THEN sealed_nonce ELSE NULL END \
                 WHERE id = $1 AND classify_job_id = $2",
            )
            .bind(item.id)
            .bind(job.id)
            .bind(l.sentiment.as_str())
            .bind(score)
            .bind(l.intent.as_str())
            .bind(l.urgency.as_str())
            .bind(rank)
            .bind(language)
            .bind(l.personal_data)
            .bind(now)
            .bind(text)
            .bind(l.redacted)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Intents stored comma-separated.
fn split_intents(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
