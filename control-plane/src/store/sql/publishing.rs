//! [`PublishingStore`] for [`SqlStore`]: accounts, posts and their leases,
//! attempts, OAuth states.

use super::*;
use crate::cloud::crypto::Sealed;
use crate::store::{
    AccountPatch, AccountStatus, MastodonApp, Network, NewAccount, NewPost, OAuthState, PlatformLimit,
    PostAttempt, PostFilter, PostPatch, PostStatus, PublishResult, PublishingStore, SealedTokens,
    SocialAccount, SocialPost, TokenRefresh,
};

#[derive(FromRow)]
struct AccountRow {
    id: Uuid,
    tenant_id: Uuid,
    platform: String,
    external_id: String,
    instance_url: Option<String>,
    handle: String,
    display_name: String,
    profile_url: Option<String>,
    project_ids: Option<String>,
    status: String,
    status_reason: Option<String>,
    rate_limited_until: Option<Timestamp>,
    rate_limit_note: Option<String>,
    token_expires_at: Option<Timestamp>,
    has_refresh_token: bool,
    token_version: i64,
    refresh_retry_at: Option<Timestamp>,
    refresh_failures: i64,
    last_success_at: Option<Timestamp>,
    last_checked_at: Option<Timestamp>,
    next_check_at: Timestamp,
    posting_time_zone: String,
    posting_slots: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<AccountRow> for SocialAccount {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<SocialAccount> {
        Ok(SocialAccount {
            id: r.id,
            tenant_id: r.tenant_id,
            network: r.platform.parse().map_err(corrupt("social_accounts.platform"))?,
            external_id: r.external_id,
            instance_url: r.instance_url,
            handle: r.handle,
            display_name: r.display_name,
            profile_url: r.profile_url,
            project_ids: json_column(r.project_ids.as_deref(), "social_accounts.project_ids")?,
            status: r.status.parse::<AccountStatus>().map_err(corrupt("social_accounts.status"))?,
            status_reason: r.status_reason,
            rate_limited_until: r.rate_limited_until,
            rate_limit_note: r.rate_limit_note,
            token_expires_at: r.token_expires_at,
            has_refresh_token: r.has_refresh_token,
            token_version: r.token_version,
            refresh_retry_at: r.refresh_retry_at,
            refresh_failures: r.refresh_failures,
            last_success_at: r.last_success_at,
            last_checked_at: r.last_checked_at,
            next_check_at: r.next_check_at,
            posting_time_zone: r.posting_time_zone,
            posting_slots: serde_json::from_str(&r.posting_slots)
                .map_err(corrupt("social_accounts.posting_slots"))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const ACCOUNT_COLUMNS: &str = "id, tenant_id, platform, external_id, instance_url, handle, display_name, \
     profile_url, project_ids, status, status_reason, rate_limited_until, rate_limit_note, token_expires_at, \
     (COALESCE(length(refresh_token_ciphertext), 0) > 0) AS has_refresh_token, token_version, refresh_retry_at, \
     refresh_failures, last_success_at, last_checked_at, next_check_at, posting_time_zone, posting_slots, \
     created_at, updated_at";

#[derive(FromRow)]
struct TokenRow {
    access_token_ciphertext: Vec<u8>,
    access_token_nonce: Vec<u8>,
    /// Empty when there is none.
    refresh_token_ciphertext: Vec<u8>,
    refresh_token_nonce: Vec<u8>,
    token_expires_at: Option<Timestamp>,
}

#[derive(FromRow)]
struct PostRow {
    id: Uuid,
    tenant_id: Uuid,
    account_id: Uuid,
    platform: String,
    handle: String,
    project_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    activity_id: Option<Uuid>,
    activity_version: Option<i64>,
    text: String,
    image_url: Option<String>,
    status: String,
    scheduled_at: Option<Timestamp>,
    time_zone: String,
    approved_by: Option<Uuid>,
    approved_at: Option<Timestamp>,
    not_before: Option<Timestamp>,
    wait_reason: Option<String>,
    lease_owner: Option<String>,
    lease_until: Option<Timestamp>,
    attempts: i64,
    generation: i64,
    platform_post_id: Option<String>,
    platform_url: Option<String>,
    platform_container_id: Option<String>,
    published_at: Option<Timestamp>,
    error: Option<String>,
    error_hint: Option<String>,
    unconfirmed_since: Option<Timestamp>,
    idempotency_key: Option<String>,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    updated_at: Timestamp,
    edited_at: Option<Timestamp>,
    revision: i64,
    reply_to: Option<String>,
}

impl TryFrom<PostRow> for SocialPost {
    type Error = StoreError;
    fn try_from(r: PostRow) -> Result<SocialPost> {
        Ok(SocialPost {
            id: r.id,
            tenant_id: r.tenant_id,
            account_id: r.account_id,
            network: r.platform.parse().map_err(corrupt("social_accounts.platform"))?,
            handle: r.handle,
            project_id: r.project_id,
            campaign_id: r.campaign_id,
            activity_id: r.activity_id,
            activity_version: r.activity_version,
            text: r.text,
            image_url: r.image_url,
            status: r.status.parse::<PostStatus>().map_err(corrupt("social_posts.status"))?,
            scheduled_at: r.scheduled_at,
            time_zone: r.time_zone,
            approved_by: r.approved_by,
            approved_at: r.approved_at,
            not_before: r.not_before,
            wait_reason: r.wait_reason,
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
            attempts: r.attempts,
            generation: r.generation,
            platform_post_id: r.platform_post_id,
            platform_url: r.platform_url,
            platform_container_id: r.platform_container_id,
            published_at: r.published_at,
            error: r.error,
            error_hint: r.error_hint,
            unconfirmed_since: r.unconfirmed_since,
            idempotency_key: r.idempotency_key,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            edited_at: r.edited_at,
            revision: r.revision,
            reply_to: r.reply_to,
        })
    }
}

/// A post (`p`) whose approval is complete: its own, or its activity's
/// while its text and image are as they came from the activity.
const POST_APPROVED: &str = "(p.approved_at IS NOT NULL OR (p.edited_at IS NULL AND p.activity_id IS NOT NULL \
     AND EXISTS (SELECT 1 FROM activities ac WHERE ac.id = p.activity_id AND ac.approved_at IS NOT NULL)))";

const POST_SELECT: &str = "SELECT p.id, p.tenant_id, p.account_id, a.platform, a.handle, p.project_id, \
     p.campaign_id, p.activity_id, p.activity_version, p.text, p.image_url, p.status, p.scheduled_at, p.time_zone, \
     p.approved_by, p.approved_at, p.not_before, p.wait_reason, p.lease_owner, p.lease_until, p.attempts, \
     p.generation, p.platform_post_id, p.platform_url, p.platform_container_id, p.published_at, p.error, p.error_hint, \
     p.unconfirmed_since, p.idempotency_key, p.created_by, p.created_at, p.updated_at, p.edited_at, \
     p.revision, p.reply_to \
     FROM social_posts p JOIN social_accounts a ON a.id = p.account_id";

#[derive(FromRow)]
struct AttemptRow {
    id: Uuid,
    post_id: Uuid,
    tenant_id: Uuid,
    kind: String,
    started_at: Timestamp,
    finished_at: Timestamp,
    request_id: Option<String>,
    http_status: Option<i64>,
    outcome: String,
    detail: String,
}

#[derive(FromRow)]
struct OAuthStateRow {
    state_hash: String,
    tenant_id: Uuid,
    user_id: Uuid,
    platform: String,
    instance_url: Option<String>,
    verifier_ciphertext: Vec<u8>,
    verifier_nonce: Vec<u8>,
    project_ids: Option<String>,
    expires_at: Timestamp,
}

#[derive(FromRow)]
struct MastodonAppRow {
    instance_url: String,
    client_id: String,
    secret_ciphertext: Vec<u8>,
    secret_nonce: Vec<u8>,
    redirect_uri: String,
    scopes: String,
}

fn ids_json(ids: Option<&Vec<Uuid>>) -> Result<Option<String>> {
    ids.map(to_json).transpose()
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
    pub(super) async fn fetch_account(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<SocialAccount>> {
        let row: Option<AccountRow> = sqlx::query_as(sql(&[
            "SELECT ",
            ACCOUNT_COLUMNS,
            " FROM social_accounts WHERE tenant_id = $1 AND id = $2 AND disconnected_at IS NULL",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(SocialAccount::try_from).transpose()
    }

    /// Inserts a new post (its account checked by the caller).
    pub(super) async fn insert_post(conn: &mut DB::Connection, p: &NewPost, now: Timestamp) -> Result<()> {
        let status: &'static str = p.status.into();
        sqlx::query(
            "INSERT INTO social_posts (id, tenant_id, account_id, project_id, campaign_id, activity_id, \
             activity_version, text, status, scheduled_at, time_zone, approved_by, approved_at, idempotency_key, \
             created_by, created_at, updated_at, image_url, edited_at, reply_to) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18, $19)",
        )
        .bind(p.id)
        .bind(p.tenant_id)
        .bind(p.account_id)
        .bind(p.project_id)
        .bind(p.campaign_id)
        .bind(p.activity_id)
        .bind(p.activity_version)
        .bind(p.text.clone())
        .bind(status)
        .bind(p.scheduled_at)
        .bind(p.time_zone.clone())
        .bind(p.approved_by)
        .bind(p.approved_by.map(|_| now))
        .bind(p.idempotency_key.clone())
        .bind(p.created_by)
        .bind(now)
        .bind(p.image_url.clone())
        .bind(p.edited.then_some(now))
        .bind(p.reply_to.clone())
        .execute(&mut *conn)
        .await
        .map_err(|e| unique_violation(e, "idempotency_key_reused", "this Idempotency-Key was already used"))?;
        Ok(())
    }

    async fn fetch_post(conn: &mut DB::Connection, id: Uuid) -> Result<Option<SocialPost>> {
        let row: Option<PostRow> = sqlx::query_as(sql(&[POST_SELECT, " WHERE p.id = $1"]))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(SocialPost::try_from).transpose()
    }
}

#[async_trait]
impl<DB> PublishingStore for SqlStore<DB>
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
    async fn connect_account(&self, a: &NewAccount, audit: &NewAuditEvent) -> Result<SocialAccount> {
        let now = audit.occurred_at;
        let platform: &'static str = a.network.into();
        let mut tx = self.write.begin().await?;
        let existing: Option<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM social_accounts WHERE tenant_id = $1 AND platform = $2 \
             AND COALESCE(instance_url, '') = COALESCE($3, '') AND external_id = $4",
        )
        .bind(a.tenant_id)
        .bind(platform)
        .bind(a.instance_url.clone())
        .bind(a.external_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let (refresh_ct, refresh_nonce) = match &a.tokens.refresh {
            Some(s) => (s.ciphertext.clone(), s.nonce.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let id = match existing {
            Some((id,)) => {
                // Reconnecting: new tokens, healthy again, history kept. A
                // missing refresh token keeps the stored one.
                sqlx::query(
                    "UPDATE social_accounts SET handle = $2, display_name = $3, profile_url = $4, \
                     status = 'connected', status_reason = NULL, access_token_ciphertext = $5, \
                     access_token_nonce = $6, refresh_token_ciphertext = CASE WHEN length($7) = 0 THEN refresh_token_ciphertext ELSE $7 END, \
                     refresh_token_nonce = CASE WHEN length($8) = 0 THEN refresh_token_nonce ELSE $8 END, token_expires_at = $9, \
                     token_version = token_version + 1, refresh_retry_at = NULL, refresh_failures = 0, \
                     last_success_at = $10, next_check_at = $10, updated_at = $10, disconnected_at = NULL \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(a.handle.clone())
                .bind(a.display_name.clone())
                .bind(a.profile_url.clone())
                .bind(a.tokens.access.ciphertext.clone())
                .bind(a.tokens.access.nonce.clone())
                .bind(refresh_ct)
                .bind(refresh_nonce)
                .bind(a.tokens.expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                sqlx::query(
                    "INSERT INTO social_accounts (id, tenant_id, platform, external_id, instance_url, handle, \
                     display_name, profile_url, project_ids, status, access_token_ciphertext, access_token_nonce, \
                     refresh_token_ciphertext, refresh_token_nonce, token_expires_at, last_success_at, \
                     next_check_at, posting_time_zone, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'connected', $10, $11, $12, $13, $14, $15, $15, \
                     $16, $17, $15, $15)",
                )
                .bind(a.id)
                .bind(a.tenant_id)
                .bind(platform)
                .bind(a.external_id.clone())
                .bind(a.instance_url.clone())
                .bind(a.handle.clone())
                .bind(a.display_name.clone())
                .bind(a.profile_url.clone())
                .bind(ids_json(a.project_ids.as_ref())?)
                .bind(a.tokens.access.ciphertext.clone())
                .bind(a.tokens.access.nonce.clone())
                .bind(refresh_ct)
                .bind(refresh_nonce)
                .bind(a.tokens.expires_at)
                .bind(now)
                .bind(a.posting_time_zone.clone())
                .bind(a.created_by)
                .execute(&mut *tx)
                .await?;
                a.id
            }
        };
        // Posts that waited for the account go now.
        sqlx::query(
            "UPDATE social_posts SET not_before = NULL, wait_reason = NULL, updated_at = $2 \
             WHERE account_id = $1 AND status = 'scheduled'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.resource_id = Some(id.to_string());
        Self::insert_audit(&mut tx, &audit).await?;
        let account = Self::fetch_account(&mut tx, a.tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(account)
    }

    async fn accounts(&self, tenant_id: Uuid) -> Result<Vec<SocialAccount>> {
        let rows: Vec<AccountRow> = sqlx::query_as(sql(&[
            "SELECT ",
            ACCOUNT_COLUMNS,
            " FROM social_accounts WHERE tenant_id = $1 AND disconnected_at IS NULL \
             ORDER BY platform, handle, id",
        ]))
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn account(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<SocialAccount>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_account(&mut conn, tenant_id, id).await
    }

    async fn account_tokens(&self, id: Uuid) -> Result<Option<(SocialAccount, SealedTokens)>> {
        let mut conn = self.read.acquire().await?;
        let Some(tenant_id) = sqlx::query_as::<_, (Uuid,)>(
            "SELECT tenant_id FROM social_accounts WHERE id = $1 AND disconnected_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|(t,)| t) else {
            return Ok(None);
        };
        let Some(account) = Self::fetch_account(&mut conn, tenant_id, id).await? else {
            return Ok(None);
        };
        let t: TokenRow = sqlx::query_as(
            "SELECT access_token_ciphertext, access_token_nonce, \
             COALESCE(refresh_token_ciphertext, $2) AS refresh_token_ciphertext, \
             COALESCE(refresh_token_nonce, $2) AS refresh_token_nonce, token_expires_at \
             FROM social_accounts WHERE id = $1",
        )
        .bind(id)
        .bind(Vec::<u8>::new())
        .fetch_one(&mut *conn)
        .await?;
        let refresh = (!t.refresh_token_ciphertext.is_empty())
            .then_some(Sealed { ciphertext: t.refresh_token_ciphertext, nonce: t.refresh_token_nonce });
        let tokens = SealedTokens {
            access: Sealed { ciphertext: t.access_token_ciphertext, nonce: t.access_token_nonce },
            refresh,
            expires_at: t.token_expires_at,
        };
        Ok(Some((account, tokens)))
    }

    async fn update_account(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &AccountPatch,
        audit: &NewAuditEvent,
    ) -> Result<SocialAccount> {
        let mut tx = self.write.begin().await?;
        let current = Self::fetch_account(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        let projects = match &patch.project_ids {
            Some(p) => p.clone(),
            None => current.project_ids.clone(),
        };
        let zone = patch.posting_time_zone.clone().unwrap_or(current.posting_time_zone);
        let slots = patch.posting_slots.clone().unwrap_or(current.posting_slots);
        sqlx::query(
            "UPDATE social_accounts SET project_ids = $2, posting_time_zone = $3, posting_slots = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(ids_json(projects.as_ref())?)
        .bind(zone)
        .bind(to_json(&slots)?)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        let account = Self::fetch_account(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(account)
    }

    async fn disconnect_account(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        if Self::fetch_account(&mut tx, tenant_id, id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        // The ciphertext columns are NOT NULL: an empty ciphertext opens to
        // nothing, and the account is never used again until reconnected.
        sqlx::query(
            "UPDATE social_accounts SET disconnected_at = $2, access_token_ciphertext = $3, \
             access_token_nonce = $3, refresh_token_ciphertext = NULL, refresh_token_nonce = NULL, \
             updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(Vec::<u8>::new())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE social_posts SET status = 'cancelled', wait_reason = 'the account was disconnected', \
             lease_owner = NULL, lease_until = NULL, updated_at = $2 \
             WHERE account_id = $1 AND status IN ('draft', 'scheduled')",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lock_refresh(
        &self,
        id: Uuid,
        version: i64,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE social_accounts SET refresh_owner = $2, refresh_until = $3 \
             WHERE id = $1 AND token_version = $5 AND disconnected_at IS NULL \
             AND (refresh_owner IS NULL OR refresh_until < $4 OR refresh_owner = $2)",
        )
        .bind(id)
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(version)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&result) == 1)
    }

    async fn finish_refresh(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &TokenRefresh,
        now: Timestamp,
        audit: Option<&NewAuditEvent>,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let result = match outcome {
            TokenRefresh::Refreshed(tokens) => {
                let (refresh_ct, refresh_nonce) = match &tokens.refresh {
                    Some(s) => (s.ciphertext.clone(), s.nonce.clone()),
                    None => (Vec::new(), Vec::new()),
                };
                sqlx::query(
                    "UPDATE social_accounts SET access_token_ciphertext = $3, access_token_nonce = $4, \
                     refresh_token_ciphertext = CASE WHEN length($5) = 0 THEN refresh_token_ciphertext ELSE $5 END, \
                     refresh_token_nonce = CASE WHEN length($6) = 0 THEN refresh_token_nonce ELSE $6 END, token_expires_at = $7, \
                     token_version = token_version + 1, refresh_owner = NULL, refresh_until = NULL, \
                     refresh_retry_at = NULL, refresh_failures = 0, status = 'connected', status_reason = NULL, \
                     last_success_at = $8, updated_at = $8 WHERE id = $1 AND refresh_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .bind(tokens.access.ciphertext.clone())
                .bind(tokens.access.nonce.clone())
                .bind(refresh_ct)
                .bind(refresh_nonce)
                .bind(tokens.expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?
            }
            TokenRefresh::Retry { retry_at, reason } => {
                sqlx::query(
                    "UPDATE social_accounts SET refresh_owner = NULL, refresh_until = NULL, refresh_retry_at = $3, \
                     refresh_failures = refresh_failures + 1, rate_limit_note = $4, updated_at = $5 \
                     WHERE id = $1 AND refresh_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .bind(*retry_at)
                .bind(reason.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?
            }
            TokenRefresh::Refused { reason } => {
                sqlx::query(
                    "UPDATE social_accounts SET refresh_owner = NULL, refresh_until = NULL, \
                     status = 'needs_reconnect', status_reason = $3, updated_at = $4 \
                     WHERE id = $1 AND refresh_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .bind(reason.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?
            }
        };
        if DB::rows_affected(&result) == 1
            && let Some(audit) = audit
        {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn account_needs_reconnect(&self, id: Uuid, reason: &str, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let result = sqlx::query(
            "UPDATE social_accounts SET status = 'needs_reconnect', status_reason = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'connected'",
        )
        .bind(id)
        .bind(reason)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 1 {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn account_rate_limited(&self, id: Uuid, until: Timestamp, note: &str) -> Result<()> {
        sqlx::query(
            "UPDATE social_accounts SET rate_limited_until = $2, rate_limit_note = $3 \
             WHERE id = $1 AND (rate_limited_until IS NULL OR rate_limited_until < $2)",
        )
        .bind(id)
        .bind(until)
        .bind(note)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn account_checked(
        &self,
        id: Uuid,
        ok: bool,
        next_check_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE social_accounts SET last_checked_at = $3, next_check_at = $4, \
             last_success_at = CASE WHEN $2 THEN $3 ELSE last_success_at END WHERE id = $1",
        )
        .bind(id)
        .bind(ok)
        .bind(now)
        .bind(next_check_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn accounts_due_check(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM social_accounts WHERE disconnected_at IS NULL AND status = 'connected' \
             AND next_check_at <= $1 ORDER BY next_check_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn create_post(&self, p: &NewPost, audit: &NewAuditEvent) -> Result<(SocialPost, bool)> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        if let Some(key) = &p.idempotency_key {
            let existing: Option<(Uuid,)> =
                sqlx::query_as("SELECT id FROM social_posts WHERE tenant_id = $1 AND idempotency_key = $2")
                    .bind(p.tenant_id)
                    .bind(key.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((id,)) = existing {
                let post = Self::fetch_post(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                return Ok((post, false));
            }
        }
        if Self::fetch_account(&mut tx, p.tenant_id, p.account_id).await?.is_none() {
            return Err(StoreError::Invalid {
                field: "account_id",
                message: "no connected account of this organisation has this id".into(),
            });
        }
        Self::insert_post(&mut tx, p, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let post = Self::fetch_post(&mut tx, p.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok((post, true))
    }

    async fn post(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<SocialPost>> {
        let row: Option<PostRow> =
            sqlx::query_as(sql(&[POST_SELECT, " WHERE p.tenant_id = $1 AND p.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.map(SocialPost::try_from).transpose()
    }

    async fn posts(&self, tenant_id: Uuid, f: &PostFilter) -> Result<Vec<SocialPost>> {
        let status: Option<String> = f.status.map(|s| s.to_string());
        let rows: Vec<PostRow> = sqlx::query_as(sql(&[
            POST_SELECT,
            " WHERE p.tenant_id = $1 AND ($2 IS NULL OR COALESCE(p.scheduled_at, p.created_at) >= $2) \
             AND ($3 IS NULL OR COALESCE(p.scheduled_at, p.created_at) < $3) \
             AND ($4 IS NULL OR p.account_id = $4) AND ($5 IS NULL OR p.project_id = $5) \
             AND ($6 IS NULL OR p.campaign_id = $6) AND ($7 IS NULL OR p.status = $7) \
             AND ($9 IS NULL OR p.idempotency_key = $9) \
             ORDER BY COALESCE(p.scheduled_at, p.created_at), p.id LIMIT $8",
        ]))
        .bind(tenant_id)
        .bind(f.from)
        .bind(f.to)
        .bind(f.account_id)
        .bind(f.project_id)
        .bind(f.campaign_id)
        .bind(status)
        .bind(f.limit)
        .bind(f.idempotency_key.clone())
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn update_post(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &PostPatch,
        audit: &NewAuditEvent,
    ) -> Result<SocialPost> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let current: Option<PostRow> =
            sqlx::query_as(sql(&[POST_SELECT, " WHERE p.tenant_id = $1 AND p.id = $2", DB::FOR_UPDATE]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let current = current.map(SocialPost::try_from).transpose()?.ok_or(StoreError::NotFound)?;
        if !current.status.editable() {
            return Err(StoreError::Conflict {
                code: "post_not_editable",
                message: format!("the post is {}; it can no longer be changed", current.status),
            });
        }
        let status: &'static str = patch.status.unwrap_or(current.status).into();
        let scheduled_at = patch.scheduled_at.unwrap_or(current.scheduled_at);
        let text = patch.text.clone().unwrap_or_else(|| current.text.clone());
        let image_url = patch.image_url.clone().unwrap_or_else(|| current.image_url.clone());
        // A changed text or image is content nobody approved yet.
        let edited = text != current.text || image_url != current.image_url;
        let (approved_by, approved_at) = match patch.approved_by {
            Some(by) => (Some(by), Some(now)),
            None if edited => (None, None),
            None => (current.approved_by, current.approved_at),
        };
        let edited_at = if edited { Some(now) } else { current.edited_at };
        // A change clears what the previous schedule was waiting for, and
        // a container made for the previous text or image.
        let result = sqlx::query(
            "UPDATE social_posts SET text = $3, status = $4, scheduled_at = $5, time_zone = $6, \
             approved_by = $7, approved_at = $8, not_before = NULL, wait_reason = NULL, error = NULL, \
             error_hint = NULL, updated_at = $9, image_url = $10, platform_container_id = NULL, edited_at = $11, \
             revision = revision + $12 \
             WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(<&'static str>::from(current.status))
        .bind(text)
        .bind(status)
        .bind(scheduled_at)
        .bind(patch.time_zone.clone().unwrap_or(current.time_zone))
        .bind(approved_by)
        .bind(approved_at)
        .bind(now)
        .bind(image_url)
        .bind(edited_at)
        .bind(i64::from(edited))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) != 1 {
            return Err(StoreError::Conflict {
                code: "post_not_editable",
                message: "the post changed meanwhile (it may be publishing); reload it".into(),
            });
        }
        Self::insert_audit(&mut tx, audit).await?;
        let post = Self::fetch_post(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(post)
    }

    async fn delete_post(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let result = sqlx::query(
            "UPDATE social_posts SET status = 'deleted', updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND status = 'published'",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            let result = sqlx::query(
                "DELETE FROM social_posts WHERE tenant_id = $1 AND id = $2 \
                 AND status IN ('draft', 'scheduled', 'failed', 'cancelled', 'deleted')",
            )
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&result) == 0 {
                return match Self::fetch_post(&mut tx, id).await? {
                    Some(p) if p.tenant_id == tenant_id => Err(StoreError::Conflict {
                        code: "post_busy",
                        message: format!("the post is {}; wait until it is published or failed", p.status),
                    }),
                    _ => Err(StoreError::NotFound),
                };
            }
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn post_attempts(&self, tenant_id: Uuid, post_id: Uuid) -> Result<Vec<PostAttempt>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT id, post_id, tenant_id, kind, started_at, finished_at, request_id, http_status, outcome, \
             detail FROM social_post_attempts WHERE tenant_id = $1 AND post_id = $2 ORDER BY started_at, id",
        )
        .bind(tenant_id)
        .bind(post_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PostAttempt {
                id: r.id,
                post_id: r.post_id,
                tenant_id: r.tenant_id,
                kind: r.kind,
                started_at: r.started_at,
                finished_at: r.finished_at,
                request_id: r.request_id,
                http_status: r.http_status,
                outcome: r.outcome,
                detail: r.detail,
            })
            .collect())
    }

    async fn record_attempt(&self, a: &PostAttempt) -> Result<()> {
        sqlx::query(
            "INSERT INTO social_post_attempts (id, post_id, tenant_id, kind, started_at, finished_at, request_id, \
             http_status, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.id)
        .bind(a.post_id)
        .bind(a.tenant_id)
        .bind(a.kind.clone())
        .bind(a.started_at)
        .bind(a.finished_at)
        .bind(a.request_id.clone())
        .bind(a.http_status)
        .bind(a.outcome.clone())
        .bind(a.detail.clone())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn due_posts(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(sql(&[
            "SELECT p.id FROM social_posts p JOIN social_accounts a ON a.id = p.account_id \
             WHERE p.status = 'scheduled' AND p.scheduled_at <= $1 AND (p.not_before IS NULL OR p.not_before <= $1) \
             AND a.disconnected_at IS NULL AND a.status = 'connected' \
             AND (a.rate_limited_until IS NULL OR a.rate_limited_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM platform_limits l WHERE l.platform = a.platform AND l.limited_until > $1) \
             AND ",
            POST_APPROVED,
            " ORDER BY p.scheduled_at, p.id LIMIT $2",
        ]))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn due_unapproved(&self, now: Timestamp, limit: i64) -> Result<Vec<SocialPost>> {
        let rows: Vec<PostRow> = sqlx::query_as(sql(&[
            POST_SELECT,
            " WHERE p.status = 'scheduled' AND p.scheduled_at <= $1 AND NOT ",
            POST_APPROVED,
            " ORDER BY p.scheduled_at, p.id LIMIT $2",
        ]))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(SocialPost::try_from).collect()
    }

    async fn hold_post(&self, id: Uuid, reason: &str, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let now = audit.occurred_at;
        let result = sqlx::query(sql(&[
            "UPDATE social_posts AS p SET status = 'needs_reschedule', wait_reason = $2, not_before = NULL, \
             updated_at = $3 WHERE id = $1 AND status = 'scheduled' AND scheduled_at <= $3 AND NOT ",
            POST_APPROVED,
        ]))
        .bind(id)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) != 1 {
            return Ok(false);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unconfirmed_due(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT p.id FROM social_posts p JOIN social_accounts a ON a.id = p.account_id \
             WHERE p.status = 'unconfirmed' AND (p.not_before IS NULL OR p.not_before <= $1) \
             AND (p.lease_until IS NULL OR p.lease_until < $1) \
             AND a.disconnected_at IS NULL AND a.status = 'connected' \
             AND (a.rate_limited_until IS NULL OR a.rate_limited_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM platform_limits l WHERE l.platform = a.platform AND l.limited_until > $1) \
             ORDER BY p.not_before, p.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn expired_publishing(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM social_posts WHERE status = 'publishing' AND lease_until < $1 \
             ORDER BY lease_until, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn next_post_due(&self) -> Result<Option<Timestamp>> {
        let row: (Option<Timestamp>,) = sqlx::query_as(
            "SELECT MIN(CASE WHEN status = 'publishing' THEN lease_until \
             WHEN not_before IS NOT NULL AND (scheduled_at IS NULL OR not_before > scheduled_at) THEN not_before \
             ELSE scheduled_at END) FROM social_posts WHERE status IN ('scheduled', 'publishing', 'unconfirmed')",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(row.0)
    }

    async fn claim_post(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SocialPost>> {
        let mut tx = self.write.begin().await?;
        // Scheduled and due: a new attempt. Publishing with an expired
        // lease: if its request may have been sent, it is unconfirmed now;
        // otherwise the attempt starts over. Unconfirmed: the lease is for
        // reconciling it.
        // A scheduled post is taken only if its approval is complete now.
        let result = sqlx::query(sql(&[
            "UPDATE social_posts AS p SET lease_owner = $2, lease_until = $3, updated_at = $4, \
             attempts = attempts + CASE WHEN status = 'scheduled' THEN 1 ELSE 0 END, \
             status = CASE WHEN status = 'scheduled' THEN 'publishing' \
                           WHEN status = 'publishing' AND unconfirmed_since IS NOT NULL THEN 'unconfirmed' \
                           ELSE status END \
             WHERE id = $1 AND ( \
               (status = 'scheduled' AND scheduled_at <= $4 AND (not_before IS NULL OR not_before <= $4) AND ",
            POST_APPROVED,
            ") \
               OR (status = 'publishing' AND lease_until < $4) \
               OR (status = 'unconfirmed' AND (lease_until IS NULL OR lease_until < $4) \
                   AND (not_before IS NULL OR not_before <= $4)))",
        ]))
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) != 1 {
            return Ok(None);
        }
        let post = Self::fetch_post(&mut tx, id).await?;
        tx.commit().await?;
        Ok(post)
    }

    async fn mark_sending(&self, id: Uuid, owner: &str, now: Timestamp) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE social_posts SET unconfirmed_since = COALESCE(unconfirmed_since, $3) \
             WHERE id = $1 AND lease_owner = $2 AND status IN ('publishing', 'unconfirmed')",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&result) == 1)
    }

    async fn platform_limited(
        &self,
        network: Network,
        until: Timestamp,
        note: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO platform_limits (platform, limited_until, note, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (platform) DO UPDATE SET limited_until = excluded.limited_until, note = excluded.note, \
             updated_at = excluded.updated_at WHERE platform_limits.limited_until < excluded.limited_until",
        )
        .bind(<&'static str>::from(network))
        .bind(until)
        .bind(note)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn platform_limits(&self, now: Timestamp) -> Result<Vec<PlatformLimit>> {
        let rows: Vec<(String, Timestamp, String)> = sqlx::query_as(
            "SELECT platform, limited_until, note FROM platform_limits WHERE limited_until > $1 ORDER BY platform",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(platform, until, note)| {
                Ok(PlatformLimit {
                    network: platform.parse().map_err(corrupt("platform_limits.platform"))?,
                    until,
                    note,
                })
            })
            .collect()
    }

    async fn set_post_container(&self, id: Uuid, owner: &str, container: Option<&str>) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE social_posts SET platform_container_id = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status IN ('publishing', 'unconfirmed')",
        )
        .bind(id)
        .bind(owner)
        .bind(container.map(str::to_owned))
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&result) == 1)
    }

    async fn finish_post(
        &self,
        id: Uuid,
        owner: &str,
        result: &PublishResult,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let guard = " WHERE id = $1 AND lease_owner = $2 AND status IN ('publishing', 'unconfirmed')";
        let done = match result {
            PublishResult::Published { platform_post_id, url } => sqlx::query(sql(&[
                "UPDATE social_posts SET status = 'published', platform_post_id = $3, platform_url = $4, \
                 published_at = $5, lease_owner = NULL, lease_until = NULL, not_before = NULL, wait_reason = NULL, \
                 error = NULL, error_hint = NULL, unconfirmed_since = NULL, updated_at = $5",
                guard,
            ]))
            .bind(id)
            .bind(owner)
            .bind(platform_post_id.clone())
            .bind(url.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?,
            PublishResult::Failed { error, hint } => sqlx::query(sql(&[
                "UPDATE social_posts SET status = 'failed', error = $3, error_hint = $4, lease_owner = NULL, \
                 lease_until = NULL, not_before = NULL, wait_reason = NULL, unconfirmed_since = NULL, updated_at = $5",
                guard,
            ]))
            .bind(id)
            .bind(owner)
            .bind(error.clone())
            .bind(hint.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?,
            PublishResult::Unconfirmed { reason, check_at } => sqlx::query(sql(&[
                "UPDATE social_posts SET status = 'unconfirmed', wait_reason = $3, not_before = $4, \
                 lease_owner = NULL, lease_until = NULL, unconfirmed_since = COALESCE(unconfirmed_since, $5), \
                 updated_at = $5",
                guard,
            ]))
            .bind(id)
            .bind(owner)
            .bind(reason.clone())
            .bind(*check_at)
            .bind(now)
            .execute(&mut *tx)
            .await?,
            PublishResult::Wait { until, reason, new_generation } => sqlx::query(sql(&[
                "UPDATE social_posts SET status = 'scheduled', wait_reason = $3, not_before = $4, \
                 lease_owner = NULL, lease_until = NULL, unconfirmed_since = NULL, \
                 generation = generation + $6, updated_at = $5",
                guard,
            ]))
            .bind(id)
            .bind(owner)
            .bind(reason.clone())
            .bind(*until)
            .bind(now)
            .bind(i64::from(*new_generation))
            .execute(&mut *tx)
            .await?,
        };
        let done = DB::rows_affected(&done) == 1;
        if done && !matches!(result, PublishResult::Wait { .. }) {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn save_oauth_state(&self, s: &OAuthState, now: Timestamp) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM social_oauth_states WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO social_oauth_states (state_hash, tenant_id, user_id, platform, instance_url, \
             verifier_ciphertext, verifier_nonce, project_ids, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.state_hash.clone())
        .bind(s.tenant_id)
        .bind(s.user_id)
        .bind(<&'static str>::from(s.network))
        .bind(s.instance_url.clone())
        .bind(s.verifier.ciphertext.clone())
        .bind(s.verifier.nonce.clone())
        .bind(ids_json(s.project_ids.as_ref())?)
        .bind(now)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<Option<OAuthState>> {
        let mut tx = self.write.begin().await?;
        let row: Option<OAuthStateRow> = sqlx::query_as(
            "SELECT state_hash, tenant_id, user_id, platform, instance_url, verifier_ciphertext, verifier_nonce, \
             project_ids, expires_at FROM social_oauth_states WHERE state_hash = $1",
        )
        .bind(state_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let deleted = sqlx::query("DELETE FROM social_oauth_states WHERE state_hash = $1")
            .bind(state_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Used once: a second callback with the same state finds nothing.
        if DB::rows_affected(&deleted) != 1 || r.expires_at < now {
            return Ok(None);
        }
        Ok(Some(OAuthState {
            state_hash: r.state_hash,
            tenant_id: r.tenant_id,
            user_id: r.user_id,
            network: r.platform.parse().map_err(corrupt("social_oauth_states.platform"))?,
            instance_url: r.instance_url,
            verifier: Sealed { ciphertext: r.verifier_ciphertext, nonce: r.verifier_nonce },
            project_ids: json_column(r.project_ids.as_deref(), "social_oauth_states.project_ids")?,
            expires_at: r.expires_at,
        }))
    }

    async fn mastodon_app(&self, instance_url: &str) -> Result<Option<MastodonApp>> {
        let row: Option<MastodonAppRow> = sqlx::query_as(
            "SELECT instance_url, client_id, secret_ciphertext, secret_nonce, redirect_uri, scopes \
             FROM mastodon_apps WHERE instance_url = $1",
        )
        .bind(instance_url)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| MastodonApp {
            instance_url: r.instance_url,
            client_id: r.client_id,
            secret: Sealed { ciphertext: r.secret_ciphertext, nonce: r.secret_nonce },
            redirect_uri: r.redirect_uri,
            scopes: r.scopes,
        }))
    }

    async fn save_mastodon_app(&self, app: &MastodonApp, now: Timestamp) -> Result<MastodonApp> {
        sqlx::query(
            "INSERT INTO mastodon_apps (instance_url, client_id, secret_ciphertext, secret_nonce, redirect_uri, \
             scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (instance_url) DO UPDATE SET \
             client_id = excluded.client_id, secret_ciphertext = excluded.secret_ciphertext, \
             secret_nonce = excluded.secret_nonce, redirect_uri = excluded.redirect_uri, scopes = excluded.scopes, \
             created_at = excluded.created_at WHERE mastodon_apps.scopes <> excluded.scopes",
        )
        .bind(app.instance_url.clone())
        .bind(app.client_id.clone())
        .bind(app.secret.ciphertext.clone())
        .bind(app.secret.nonce.clone())
        .bind(app.redirect_uri.clone())
        .bind(app.scopes.clone())
        .bind(now)
        .execute(&self.write)
        .await?;
        self.mastodon_app(&app.instance_url).await?.ok_or(StoreError::NotFound)
    }

    async fn user_time_zone(&self, user_id: Uuid) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT time_zone FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.and_then(|(z,)| z))
    }

    async fn set_user_time_zone(&self, user_id: Uuid, zone: &str, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE users SET time_zone = $2 WHERE id = $1")
            .bind(user_id)
            .bind(zone)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
